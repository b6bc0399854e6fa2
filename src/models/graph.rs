//! The ref graph: which model reads which. It orders builds (parents
//! first), finds cycles with their path, and answers the ancestor and
//! descendant questions of selection.

use std::collections::BTreeSet;

/// Models as nodes (by index), `ref()`s as edges from parent to child.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    names: Vec<String>,
    parents: Vec<Vec<usize>>,
    children: Vec<Vec<usize>>,
}

impl Graph {
    /// A graph over `names` where `parents[i]` are the models node `i` reads.
    pub fn new(names: Vec<String>, parents: Vec<Vec<usize>>) -> Graph {
        let mut children = vec![Vec::new(); names.len()];
        for (child, list) in parents.iter().enumerate() {
            for &parent in list {
                if let Some(c) = children.get_mut(parent) {
                    c.push(child);
                }
            }
        }
        Graph {
            names,
            parents,
            children,
        }
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The models node `i` reads.
    pub fn parents(&self, i: usize) -> &[usize] {
        self.parents.get(i).map(Vec::as_slice).unwrap_or_default()
    }

    /// The models that read node `i`.
    pub fn children(&self, i: usize) -> &[usize] {
        self.children.get(i).map(Vec::as_slice).unwrap_or_default()
    }

    /// Every node, parents before children (ties by index); or, when the
    /// refs go round, one cycle as the names along it, its first name
    /// again at the end: `a -> b -> a`.
    pub fn order(&self) -> Result<Vec<usize>, Vec<String>> {
        let mut waiting: Vec<usize> = self.parents.iter().map(Vec::len).collect();
        let mut ready: BTreeSet<usize> = (0..self.len()).filter(|&i| waiting[i] == 0).collect();
        let mut order = Vec::with_capacity(self.len());
        while let Some(next) = ready.pop_first() {
            order.push(next);
            for &child in self.children(next) {
                waiting[child] -= 1;
                if waiting[child] == 0 {
                    ready.insert(child);
                }
            }
        }
        if order.len() == self.len() {
            return Ok(order);
        }
        let stuck: BTreeSet<usize> = (0..self.len()).filter(|&i| waiting[i] > 0).collect();
        Err(self.cycle_within(&stuck))
    }

    /// A cycle among `stuck` (nodes that each wait on another of them).
    fn cycle_within(&self, stuck: &BTreeSet<usize>) -> Vec<String> {
        let Some(&start) = stuck.first() else {
            return Vec::new();
        };
        // Walk to a stuck parent until a node comes again.
        let mut path = vec![start];
        let mut node = start;
        loop {
            let Some(&parent) = self.parents(node).iter().find(|p| stuck.contains(p)) else {
                return Vec::new();
            };
            if let Some(at) = path.iter().position(|&n| n == parent) {
                // path[at..] is the cycle, walked child -> parent: show it
                // parent -> child, the way the data flows.
                let mut cycle: Vec<String> = path[at..]
                    .iter()
                    .rev()
                    .map(|&n| self.names[n].clone())
                    .collect();
                cycle.push(cycle[0].clone());
                return cycle;
            }
            path.push(parent);
            node = parent;
        }
    }

    /// The ancestors of `i` up to `depth` generations (all when `None`).
    pub fn ancestors(&self, i: usize, depth: Option<usize>) -> BTreeSet<usize> {
        self.walk(i, depth, |n| self.parents(n))
    }

    /// The descendants of `i` up to `depth` generations (all when `None`).
    pub fn descendants(&self, i: usize, depth: Option<usize>) -> BTreeSet<usize> {
        self.walk(i, depth, |n| self.children(n))
    }

    fn walk<'a>(
        &'a self,
        start: usize,
        depth: Option<usize>,
        next: impl Fn(usize) -> &'a [usize],
    ) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut frontier = vec![start];
        let mut generation = 0;
        while !frontier.is_empty() && depth.is_none_or(|d| generation < d) {
            let mut following = Vec::new();
            for node in frontier {
                for &n in next(node) {
                    if seen.insert(n) {
                        following.push(n);
                    }
                }
            }
            frontier = following;
            generation += 1;
        }
        seen.remove(&start);
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(names: &[&str], edges: &[(usize, usize)]) -> Graph {
        let mut parents = vec![Vec::new(); names.len()];
        for &(parent, child) in edges {
            parents[child].push(parent);
        }
        Graph::new(names.iter().map(|s| s.to_string()).collect(), parents)
    }

    #[test]
    fn parents_come_before_children() {
        // stg -> orders -> revenue, stg -> customers
        let g = graph(
            &["revenue", "orders", "stg", "customers"],
            &[(2, 1), (1, 0), (2, 3)],
        );
        let order = g.order().expect("acyclic");
        let at = |n: usize| order.iter().position(|&x| x == n).expect("present");
        assert!(at(2) < at(1) && at(1) < at(0) && at(2) < at(3), "{order:?}");
    }

    #[test]
    fn a_cycle_is_reported_with_its_path() {
        // base -> a -> b -> c -> a
        let g = graph(&["base", "a", "b", "c"], &[(0, 1), (1, 2), (2, 3), (3, 1)]);
        let cycle = g.order().expect_err("cycle");
        assert_eq!(cycle.len(), 4, "{cycle:?}");
        assert_eq!(cycle.first(), cycle.last());
        let text = cycle.join(" -> ");
        assert!(
            ["a -> b -> c -> a", "b -> c -> a -> b", "c -> a -> b -> c"].contains(&text.as_str()),
            "{text}"
        );
    }

    #[test]
    fn ancestors_and_descendants_by_depth() {
        let g = graph(&["a", "b", "c", "d"], &[(0, 1), (1, 2), (2, 3)]);
        assert_eq!(g.descendants(0, None), BTreeSet::from([1, 2, 3]));
        assert_eq!(g.descendants(0, Some(1)), BTreeSet::from([1]));
        assert_eq!(g.ancestors(3, Some(2)), BTreeSet::from([1, 2]));
    }
}
