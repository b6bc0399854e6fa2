//! Orchestration: jobs, schedules, runs, steps and workers.

pub mod schedule;
