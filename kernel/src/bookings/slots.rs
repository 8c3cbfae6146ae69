//! Slot search (issue 14 §3), pure: given what a treatment needs — one holder out of each
//! group (a room of its type, a device of its type, a practitioner with its skill) — the
//! start times in a window where one of each is free for the treatment plus its buffers,
//! within the holder's working hours, with the holders each start would take. Among the
//! free members of a group the preferred one is taken first (the patient's practitioner),
//! then the one the booking would leave the smallest gaps around (least fragmentation).

use super::index::{Index, Span};

/// One holder a slot may take.
#[derive(Debug, Clone)]
pub struct Member {
    /// Its index key (`resource:room-a1`, `operator:doc.wang`).
    pub key: String,
    /// Its working spans over the window (None: always working).
    pub working: Option<Vec<(i64, i64)>>,
    /// Taken before any other free member of its group.
    pub preferred: bool,
}

impl Member {
    fn works(&self, span: Span) -> bool {
        match &self.working {
            None => true,
            Some(spans) => {
                // The spans are ordered: the last one starting at or before `span.from`.
                let at = spans.partition_point(|(from, _)| *from <= span.from);
                at > 0 && spans[at - 1].1 >= span.to
            }
        }
    }
}

/// What a search looks for.
#[derive(Debug, Clone)]
pub struct Want {
    /// The window starts may lie in (the treatment, not its buffers, within it).
    pub window: Span,
    /// The treatment's length, ms.
    pub len: i64,
    /// The buffer before, ms.
    pub before: i64,
    /// The buffer after, ms.
    pub after: i64,
    /// The grid of starts, ms (every 15 minutes).
    pub step: i64,
    /// At most this many slots.
    pub limit: usize,
}

/// A free start and what it would take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// When the treatment would start.
    pub start: i64,
    /// Per group, the index of the member taken.
    pub picks: Vec<usize>,
    /// Idle time the booking would leave between it and the holders' other holds that is
    /// too short for another such treatment, summed (ms; smaller is tighter).
    pub gaps: i64,
    /// Whether every preferred member it could take is taken.
    pub preferred: bool,
}

/// What a hold over `held` would leave around it on `member`: the idle time between it
/// and its neighbours too short for another treatment of `len` (fragments, ms), and how
/// many neighbours it would touch (packing tightly).
fn fit(index: &Index, member: &Member, held: Span, len: i64) -> (i64, i64) {
    let (before, after) = index.neighbours(&member.key, held);
    let mut fragments = 0;
    let mut touching = 0;
    for gap in [
        before.map(|end| held.from - end),
        after.map(|start| start - held.to),
    ]
    .into_iter()
    .flatten()
    {
        if gap == 0 {
            touching += 1;
        } else if gap < len {
            fragments += gap;
        }
    }
    (fragments, touching)
}

/// The slots for `want` over `groups`, earliest first.
pub fn search(index: &Index, groups: &[Vec<Member>], want: &Want) -> Vec<Slot> {
    let mut out = Vec::new();
    if groups.is_empty() || groups.iter().any(Vec::is_empty) || want.step <= 0 {
        return out;
    }
    // The first start on the grid (aligned to the step in UTC, which is the local grid
    // for every whole-hour offset).
    let mut start = want.window.from.div_euclid(want.step) * want.step;
    if start < want.window.from {
        start += want.step;
    }
    while start + want.len <= want.window.to && out.len() < want.limit {
        let held = Span {
            from: start - want.before,
            to: start + want.len + want.after,
        };
        let mut picks = Vec::with_capacity(groups.len());
        let mut gaps = 0;
        let mut preferred = true;
        for group in groups {
            let best = group
                .iter()
                .enumerate()
                .filter(|(_, m)| m.works(held))
                .filter(|(_, m)| {
                    index
                        .clashes(std::slice::from_ref(&m.key), held, None)
                        .is_empty()
                })
                .map(|(i, m)| {
                    let (fragments, touching) = fit(index, m, held, want.len);
                    (i, !m.preferred, fragments, -touching)
                })
                .min_by_key(|(i, not_preferred, fragments, untouching)| {
                    (*not_preferred, *fragments, *untouching, *i)
                });
            match best {
                Some((i, not_preferred, g, _)) => {
                    picks.push(i);
                    gaps += g;
                    preferred &= !not_preferred || !group.iter().any(|m| m.preferred);
                }
                None => break,
            }
        }
        if picks.len() == groups.len() {
            out.push(Slot {
                start,
                picks,
                gaps,
                preferred,
            });
        }
        start += want.step;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const H: i64 = 3_600_000;

    fn member(key: &str, working: Option<Vec<(i64, i64)>>) -> Member {
        Member {
            key: key.into(),
            working,
            preferred: false,
        }
    }

    #[test]
    fn a_slot_needs_one_free_working_member_of_every_group() {
        let mut index = Index::new();
        index.hold(
            Uuid::now_v7(),
            &["resource:a1".to_owned()],
            Span {
                from: 9 * H,
                to: 10 * H,
            },
        );
        let rooms = vec![member("resource:a1", None)];
        let doctors = vec![member("operator:wang", Some(vec![(9 * H, 12 * H)]))];
        let want = Want {
            window: Span {
                from: 8 * H,
                to: 13 * H,
            },
            len: H,
            before: 0,
            after: 0,
            step: H / 4,
            limit: 100,
        };
        let slots = search(&index, &[rooms, doctors], &want);
        let starts: Vec<i64> = slots.iter().map(|s| s.start).collect();
        // The room is taken until 10:00 and the doctor leaves at 12:00: 10:00 … 11:00.
        assert_eq!(
            starts,
            [
                10 * H,
                10 * H + H / 4,
                10 * H + H / 2,
                10 * H + 3 * H / 4,
                11 * H
            ]
        );
        assert_eq!(slots[0].gaps, 0, "right after the other booking: no gap");
    }

    #[test]
    fn the_preferred_then_the_tightest_member_is_taken() {
        let mut index = Index::new();
        index.hold(
            Uuid::now_v7(),
            &["resource:a2".to_owned()],
            Span {
                from: 9 * H,
                to: 10 * H,
            },
        );
        let rooms = vec![member("resource:a1", None), member("resource:a2", None)];
        let want = Want {
            window: Span {
                from: 10 * H,
                to: 11 * H,
            },
            len: H,
            before: 0,
            after: 0,
            step: H,
            limit: 1,
        };
        let slots = search(&index, std::slice::from_ref(&rooms), &want);
        assert_eq!(
            slots[0].picks,
            [1],
            "a2 would touch its 9:00 booking: tighter"
        );
        let mut preferring = rooms;
        preferring[0].preferred = true;
        let slots = search(&index, &[preferring], &want);
        assert_eq!(slots[0].picks, [0]);
        assert!(slots[0].preferred);
    }
}
