//! A CSV larger than the memory flowline is allowed loads in bounded memory:
//! peak RSS follows the batch size and the warehouse's memory limit, not the
//! file size. (Alone in its test binary, so the child's RSS is all we see.)

mod common;

use std::io::Write;

use common::TestProject;

const ROWS: u64 = 5_000_000;

fn peak_child_rss_bytes() -> u64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn a_csv_bigger_than_memory_loads_in_bounded_memory() {
    let p = TestProject::new();
    p.write(
        "flowline.toml",
        "[project]\nname = \"big\"\n[warehouse]\nmemory_limit = \"128MB\"\n",
    );
    p.write(
        "pipelines/big.toml",
        "[source]\nkind = \"file\"\npath = \"data/big.csv\"\nbatch_size = 16384\n[destination]\ntable = \"raw.big\"\n",
    );
    let path = p.write("data/big.csv", "");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    writeln!(file, "id,name,email,amount,at").expect("write");
    for i in 0..ROWS {
        writeln!(
            file,
            "{i},customer number {},user{i}@example.com,{}.{:02},2024-01-{:02} 10:{:02}:00",
            i % 1000,
            i % 10_000,
            i % 100,
            i % 28 + 1,
            i % 60
        )
        .expect("write");
    }
    file.flush().expect("flush");
    drop(file);
    let file_size = std::fs::metadata(&path).expect("size").len();

    p.ok(&["run"]);
    let peak = peak_child_rss_bytes();
    assert_eq!(p.scalar("select count(*) from raw.big"), ROWS as i64);
    assert!(
        peak < file_size * 3 / 4 && peak < 400 << 20,
        "peak RSS {} MB for a {} MB file",
        peak >> 20,
        file_size >> 20
    );
}
