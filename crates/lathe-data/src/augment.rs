//! Conversation augmentations applied each time a training sample is drawn, as H2O
//! LLM Studio applies them: earlier turns dropped at random, and the first earlier
//! turn replaced by (or, for a single turn, preceded by) a random other row.

use rand::Rng;

use crate::samples::Sample;

/// Probabilities of the parent augmentations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParentAugmentation {
    /// Each earlier turn is dropped with this probability.
    pub skip_parent: f64,
    /// With this probability the first earlier turn is replaced by a random other
    /// row's turn (prepended when the sample has a single turn).
    pub random_parent: f64,
}

impl ParentAugmentation {
    /// Whether it changes anything.
    pub fn is_active(&self) -> bool {
        self.skip_parent > 0.0 || self.random_parent > 0.0
    }

    /// `sample` augmented with `rng`; random rows come from the last turns of `pool`.
    /// The last turn (the one the model learns to answer) is always kept.
    pub fn apply(&self, sample: &Sample, pool: &[Sample], rng: &mut impl Rng) -> Sample {
        let mut out = sample.clone();
        let last = out.turns.pop().expect("a sample has turns");
        if self.skip_parent > 0.0 {
            out.turns.retain(|_| !rng.random_bool(self.skip_parent));
        }
        if self.random_parent > 0.0 && !pool.is_empty() && rng.random_bool(self.random_parent) {
            let other = &pool[rng.random_range(0..pool.len())];
            let turn = other.turns.last().expect("a sample has turns").clone();
            match out.turns.first_mut() {
                Some(first) => *first = turn,
                None => out.turns.push(turn),
            }
        }
        out.turns.push(last);
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::ParentAugmentation;
    use crate::samples::{Sample, Turn};

    fn sample(prompts: &[&str]) -> Sample {
        Sample {
            row: prompts.len(),
            group: 0,
            system: None,
            turns: prompts
                .iter()
                .enumerate()
                .map(|(i, p)| Turn {
                    row: i + 1,
                    prompt: Arc::from(*p),
                    answer: Arc::from("a"),
                })
                .collect(),
        }
    }

    fn prompts(s: &Sample) -> Vec<&str> {
        s.turns.iter().map(|t| &*t.prompt).collect()
    }

    #[test]
    fn skipping_drops_earlier_turns_only() {
        let s = sample(&["1", "2", "3", "4"]);
        let all = ParentAugmentation {
            skip_parent: 1.0,
            random_parent: 0.0,
        };
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(prompts(&all.apply(&s, &[], &mut rng)), ["4"]);
        let half = ParentAugmentation {
            skip_parent: 0.5,
            random_parent: 0.0,
        };
        let mut kept = [0usize; 3];
        for _ in 0..2000 {
            let out = half.apply(&s, &[], &mut rng);
            assert_eq!(out.turns.last().unwrap().prompt.as_ref(), "4");
            for t in &out.turns[..out.turns.len() - 1] {
                kept[t.prompt.parse::<usize>().unwrap() - 1] += 1;
            }
        }
        assert!(kept.iter().all(|&k| (850..1150).contains(&k)), "{kept:?}");
    }

    #[test]
    fn a_random_parent_replaces_the_first_or_is_prepended() {
        let pool = [sample(&["x", "other"])];
        let always = ParentAugmentation {
            skip_parent: 0.0,
            random_parent: 1.0,
        };
        let mut rng = StdRng::seed_from_u64(1);
        let out = always.apply(&sample(&["1", "2", "3"]), &pool, &mut rng);
        assert_eq!(prompts(&out), ["other", "2", "3"]);
        let out = always.apply(&sample(&["solo"]), &pool, &mut rng);
        assert_eq!(prompts(&out), ["other", "solo"]);
    }
}
