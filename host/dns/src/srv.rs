//! Ordering of SRV records (RFC 2782): by priority, then weighted random
//! inside one priority. Kept free of I/O so it can be tested on its own.

use rand::Rng;

/// One usable SRV record: the target name is kept as DNS gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SrvTarget<N> {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: N,
}

/// Sorts `records` into the order in which a client tries them.
///
/// Lower priority first. Inside one priority, RFC 2782's selection: put the
/// weight-0 records first, draw a number in `0..=sum of weights`, take the
/// first record whose running sum reaches it, remove it, repeat. A record of
/// weight 0 thus has a small chance to be picked while heavier ones remain,
/// and all of them end up in the list.
pub(crate) fn order<N>(mut records: Vec<SrvTarget<N>>, rng: &mut impl Rng) -> Vec<SrvTarget<N>> {
    // Stable sort: inside a priority, the weight-0 records come first, the
    // others keep the order DNS gave them.
    records.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut ordered = Vec::with_capacity(records.len());
    let mut rest = records.into_iter().peekable();
    while let Some(first) = rest.next() {
        let priority = first.priority;
        let mut group = vec![first];
        while let Some(next) = rest.next_if(|r| r.priority == priority) {
            group.push(next);
        }
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = rng.random_range(0..=total);
            let mut running = 0u32;
            let index = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= pick
                })
                // Unreachable (the last running sum is `total`), but never panic.
                .unwrap_or(group.len() - 1);
            ordered.push(group.remove(index));
        }
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, target: &'static str) -> SrvTarget<&'static str> {
        SrvTarget {
            priority,
            weight,
            port: 5060,
            target,
        }
    }

    #[test]
    fn priorities_ascend_and_every_record_stays() {
        let mut rng = rand::rng();
        for _ in 0..200 {
            let input = vec![
                srv(20, 5, "c"),
                srv(10, 0, "a"),
                srv(30, 0, "e"),
                srv(10, 60, "b"),
                srv(20, 5, "d"),
                srv(10, 40, "f"),
            ];
            let out = order(input, &mut rng);
            let prios: Vec<u16> = out.iter().map(|r| r.priority).collect();
            assert_eq!(prios, [10, 10, 10, 20, 20, 30]);
            let mut names: Vec<&str> = out.iter().map(|r| r.target).collect();
            names[..3].sort_unstable();
            names[3..5].sort_unstable();
            assert_eq!(names, ["a", "b", "f", "c", "d", "e"]);
        }
    }

    #[test]
    fn heavier_weight_usually_first() {
        let mut rng = rand::rng();
        let runs = 2000;
        let heavy_first = (0..runs)
            .filter(|_| {
                let out = order(vec![srv(1, 10, "light"), srv(1, 90, "heavy")], &mut rng);
                out[0].target == "heavy"
            })
            .count();
        // Expected 1800 (p = 0.9, sd ~13): bounds far outside chance.
        assert!((1600..=1950).contains(&heavy_first), "{heavy_first}");
    }

    #[test]
    fn all_zero_weights_keep_everyone() {
        let mut rng = rand::rng();
        let out = order(
            vec![srv(0, 0, "x"), srv(0, 0, "y"), srv(0, 0, "z")],
            &mut rng,
        );
        let mut names: Vec<&str> = out.iter().map(|r| r.target).collect();
        names.sort_unstable();
        assert_eq!(names, ["x", "y", "z"]);
    }
}
