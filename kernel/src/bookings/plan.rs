//! Planning a day (issue 14 §4), pure: given the day's requests — a treatment's groups of
//! holders (one room of a type, one device of a type, one practitioner with the skill, and
//! the patient herself, who is in one place at a time), the window the patient can come
//! in and a priority — a schedule that respects every constraint of a booking (each holder
//! free for the treatment plus its buffers, within its working hours) and places as many
//! treatment minutes as it can, higher priorities first. And the bound no plan can beat,
//! so how good a plan is can be said as a ratio.
//!
//! The planner is a list scheduler run under several orders (most constrained first,
//! longest first, earliest window first, …) on a copy of the index, each request put at
//! its earliest free start on a fine grid, on the holders that leave the least
//! fragmentation; the best of the runs is kept. The bound relaxes the problem to capacity
//! alone: for every group of holders, the requests needing it cannot hold more minutes
//! than its members have free, and the most treatment minutes that fit is a fractional
//! knapsack; the least of those over the groups (and the total asked) bounds every plan.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::index::{Index, Span};
use super::slots::{Member, Want, search};

/// One request of the day.
#[derive(Debug, Clone)]
pub struct Request {
    /// The holders it needs: one member of each group.
    pub groups: Vec<Vec<Member>>,
    /// When the treatment (not its buffers) may lie: it starts at or after `from` and ends
    /// at or before `to`.
    pub window: Span,
    /// The treatment's length, ms.
    pub len: i64,
    /// The buffer before, ms.
    pub before: i64,
    /// The buffer after, ms.
    pub after: i64,
    /// Higher is placed first.
    pub priority: i32,
}

impl Request {
    fn held(&self) -> i64 {
        self.before + self.len + self.after
    }
}

/// Where one request was put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Its index among the requests.
    pub request: usize,
    /// When the treatment starts.
    pub start: i64,
    /// Per group, the index of the member taken.
    pub picks: Vec<usize>,
}

/// A proposed schedule.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// What was placed, by start.
    pub placed: Vec<Placement>,
    /// The requests no order could place, by index.
    pub unplaced: Vec<usize>,
    /// Treatment minutes placed, ms.
    pub placed_ms: i64,
    /// Which order found it.
    pub order: &'static str,
}

/// The orders the list scheduler is run under; every one puts higher priorities first.
const ORDERS: [&str; 6] = [
    "densest",
    "least_slack",
    "longest",
    "earliest_window",
    "fewest_holders",
    "as_asked",
];

fn order_of(requests: &[Request], order: &str) -> Vec<usize> {
    let mut at: Vec<usize> = (0..requests.len()).collect();
    let slack = |r: &Request| r.window.len() - r.len;
    let holders = |r: &Request| r.groups.iter().map(Vec::len).sum::<usize>();
    at.sort_by_key(|&i| {
        let r = &requests[i];
        let key = match order {
            // Most treatment per held minute (buffers are idle time), then least slack.
            "densest" => (-(r.len * 1000 / r.held().max(1)), slack(r), i as i64),
            "least_slack" => (slack(r), -r.held(), i as i64),
            "longest" => (-r.held(), slack(r), i as i64),
            "earliest_window" => (r.window.from, r.window.to, i as i64),
            "fewest_holders" => (holders(r) as i64, slack(r), i as i64),
            _ => (i as i64, 0, 0),
        };
        (-r.priority, key)
    });
    at
}

fn keys(r: &Request, picks: &[usize]) -> Vec<String> {
    r.groups
        .iter()
        .zip(picks)
        .filter_map(|(g, &p)| g.get(p).map(|m| m.key.clone()))
        .collect()
}

fn run(
    index: &Index,
    requests: &[Request],
    order: &[usize],
    step: i64,
    forced: &BTreeMap<usize, i64>,
) -> (Vec<Placement>, i64) {
    let mut index = index.clone();
    let mut placed = Vec::new();
    let mut minutes = 0;
    for &i in order {
        let r = &requests[i];
        // A request pinned to a start looks only there.
        let window = match forced.get(&i) {
            Some(&start) => Span {
                from: start,
                to: start + r.len,
            },
            None => r.window,
        };
        let want = Want {
            window,
            len: r.len,
            before: r.before,
            after: r.after,
            step,
            limit: 1,
        };
        if let Some(slot) = search(&index, &r.groups, &want).into_iter().next() {
            let span = Span {
                from: slot.start - r.before,
                to: slot.start + r.len + r.after,
            };
            index.hold(Uuid::now_v7(), &keys(r, &slot.picks), span);
            minutes += r.len;
            placed.push(Placement {
                request: i,
                start: slot.start,
                picks: slot.picks,
            });
        }
    }
    (placed, minutes)
}

/// How many requests with a narrow window the improvement pass tries other starts for.
const PINNED: usize = 16;
/// How many starts it tries for each.
const CANDIDATES: usize = 12;

/// Weighted by priority first, then minutes: never trade a high one for low ones.
fn score(requests: &[Request], placed: &[Placement], minutes: i64) -> (i64, i64) {
    let weight: i64 = placed
        .iter()
        .map(|x| i64::from(requests[x.request].priority.max(0)))
        .sum();
    (weight, minutes)
}

/// The best plan for `requests` on top of what `index` already holds, starts on a grid
/// of `step` ms. Higher priorities are placed before lower ones in every order tried, so
/// a plan never leaves out a request to make room for a lower one placed after it. Then
/// an improvement pass: a request with a narrow window placed at its earliest start can
/// cut the day into pieces the others do not fill (an evening visit at 18:00 where 18:10
/// would leave no gap), so for up to [`PINNED`] such requests each of their first
/// [`CANDIDATES`] starts is tried with the rest re-planned, and a better plan kept.
pub fn plan(index: &Index, requests: &[Request], step: i64) -> Plan {
    let step = step.max(60_000);
    let mut best = Plan::default();
    let mut best_order = Vec::new();
    let none = BTreeMap::new();
    for name in ORDERS {
        let order = order_of(requests, name);
        let (placed, minutes) = run(index, requests, &order, step, &none);
        if best.order.is_empty()
            || score(requests, &placed, minutes) > score(requests, &best.placed, best.placed_ms)
        {
            best = Plan {
                placed,
                unplaced: Vec::new(),
                placed_ms: minutes,
                order: name,
            };
            best_order = order;
        }
    }
    // The widest window among the requests: narrower ones are worth pinning.
    let widest = requests.iter().map(|r| r.window.len()).max().unwrap_or(0);
    let mut pinned = BTreeMap::new();
    let narrow: Vec<usize> = best_order
        .iter()
        .copied()
        .filter(|&i| requests[i].window.len() < widest)
        .take(PINNED)
        .collect();
    for i in narrow {
        let r = &requests[i];
        let want = Want {
            window: r.window,
            len: r.len,
            before: r.before,
            after: r.after,
            step,
            limit: CANDIDATES,
        };
        for slot in search(index, &r.groups, &want) {
            let mut trial = pinned.clone();
            trial.insert(i, slot.start);
            let (placed, minutes) = run(index, requests, &best_order, step, &trial);
            if score(requests, &placed, minutes) > score(requests, &best.placed, best.placed_ms) {
                best.placed = placed;
                best.placed_ms = minutes;
                best.order = "pinned";
                pinned = trial;
            }
        }
    }
    let mut taken = vec![false; requests.len()];
    for p in &best.placed {
        taken[p.request] = true;
    }
    best.unplaced = (0..requests.len()).filter(|&i| !taken[i]).collect();
    best.placed.sort_by_key(|p| (p.start, p.request));
    best
}

/// Working time of one member within `span`, ms (always working when it has no calendar).
pub fn working_ms(member: &Member, span: Span) -> i64 {
    match &member.working {
        None => span.len(),
        Some(spans) => spans
            .iter()
            .map(|&(f, t)| (t.min(span.to) - f.max(span.from)).max(0))
            .sum(),
    }
}

/// Free time of one member within `span`: its working time less what `index` holds.
pub fn free_ms(index: &Index, member: &Member, span: Span) -> i64 {
    (working_ms(member, span) - index.held_within(&member.key, span)).max(0)
}

/// The key of a group: its members' keys, sorted.
fn group_key(g: &[Member]) -> Vec<String> {
    let mut k: Vec<String> = g.iter().map(|m| m.key.clone()).collect();
    k.sort();
    k.dedup();
    k
}

/// The most treatment minutes (ms) any plan of `requests` within `day` can place: the
/// least of [`knapsack_bound`] and of the linear relaxation over every group at once
/// ([`lp_bound`], when it solves).
pub fn bound(index: &Index, requests: &[Request], day: Span) -> i64 {
    let knapsack = knapsack_bound(index, requests, day);
    match lp_bound(index, requests, day) {
        Some(lp) => lp.min(knapsack),
        None => knapsack,
    }
}

/// The linear relaxation: the requests fall into classes (the same groups, length and
/// buffers; a patient's own group left out), `x_c` of class `c` are placed (0 ≤ x_c ≤ its
/// count, fractions allowed), and for every group the classes needing it hold at most its
/// free time. Its optimum bounds every plan, since every plan is a solution. None when
/// the solver proves nothing (then the knapsack bound stands alone).
pub fn lp_bound(index: &Index, requests: &[Request], day: Span) -> Option<i64> {
    use microlp::{ComparisonOp, OptimizationDirection, Problem, SolutionStatus, SolveOutcome};
    let mut classes: BTreeMap<(Vec<Vec<String>>, i64, i64), i64> = BTreeMap::new();
    let mut capacity: BTreeMap<Vec<String>, i64> = BTreeMap::new();
    for r in requests {
        let groups: Vec<Vec<String>> = r
            .groups
            .iter()
            .filter(|g| !(g.len() == 1 && g[0].key.starts_with("patient:")))
            .map(|g| {
                let k = group_key(g);
                capacity
                    .entry(k.clone())
                    .or_insert_with(|| g.iter().map(|m| free_ms(index, m, day)).sum());
                k
            })
            .collect();
        *classes.entry((groups, r.len, r.held())).or_default() += 1;
    }
    let mut problem = Problem::new(OptimizationDirection::Maximize);
    // Minutes, so the coefficients stay small.
    let vars: Vec<_> = classes
        .iter()
        .map(|((_, len, _), count)| {
            (
                problem.add_var(*len as f64 / 60_000.0, (0.0, *count as f64)),
                *count,
            )
        })
        .collect();
    for (group, free) in &capacity {
        let terms: Vec<_> = classes
            .keys()
            .zip(&vars)
            .filter(|((groups, _, _), _)| groups.contains(group))
            .map(|((_, _, held), (v, _))| (*v, *held as f64 / 60_000.0))
            .collect();
        if !terms.is_empty() {
            problem.add_constraint(terms.as_slice(), ComparisonOp::Le, *free as f64 / 60_000.0);
        }
    }
    match problem.solve() {
        Ok(SolveOutcome::Solution(s)) if s.status() == SolutionStatus::Optimal => {
            // Rounded up a minute: a bound must never be under the optimum.
            Some(((s.objective() + 1.0).ceil() as i64) * 60_000)
        }
        _ => None,
    }
}

/// A bound one group at a time: for every group of holders, at most its free time can be
/// held, so the requests needing it place at most a fractional knapsack's worth of
/// treatment (by treatment per held minute); the requests not needing it add at most
/// their own. The least over the groups.
pub fn knapsack_bound(index: &Index, requests: &[Request], day: Span) -> i64 {
    let total: i64 = requests.iter().map(|r| r.len).sum();
    // The distinct groups, by their members' keys.
    let mut groups: BTreeMap<Vec<String>, i64> = BTreeMap::new();
    for r in requests {
        for g in &r.groups {
            let mut members: Vec<String> = g.iter().map(|m| m.key.clone()).collect();
            members.sort();
            members.dedup();
            if groups.contains_key(&members) {
                continue;
            }
            let capacity = g.iter().map(|m| free_ms(index, m, day)).sum();
            groups.insert(members, capacity);
        }
    }
    let mut best = total;
    for (members, capacity) in &groups {
        let needs = |r: &Request| {
            r.groups.iter().any(|g| {
                let mut k: Vec<String> = g.iter().map(|m| m.key.clone()).collect();
                k.sort();
                k.dedup();
                &k == members
            })
        };
        let outside: i64 = requests.iter().filter(|r| !needs(r)).map(|r| r.len).sum();
        let mut inside: Vec<&Request> = requests.iter().filter(|r| needs(r)).collect();
        // Most treatment per held minute first.
        inside.sort_by(|a, b| {
            (b.len as i128 * a.held() as i128).cmp(&(a.len as i128 * b.held() as i128))
        });
        let mut left = *capacity;
        let mut fits = 0i64;
        for r in inside {
            if left <= 0 {
                break;
            }
            if r.held() <= left {
                fits += r.len;
                left -= r.held();
            } else {
                fits += (r.len as i128 * left as i128 / r.held().max(1) as i128) as i64;
                left = 0;
            }
        }
        best = best.min(outside + fits);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;

    fn member(key: &str) -> Member {
        Member {
            key: key.into(),
            working: Some(vec![(0, 600 * M)]),
            preferred: false,
        }
    }

    fn request(groups: Vec<Vec<Member>>, len: i64, priority: i32) -> Request {
        Request {
            groups,
            window: Span {
                from: 0,
                to: 600 * M,
            },
            len: len * M,
            before: 5 * M,
            after: 5 * M,
            priority,
        }
    }

    #[test]
    fn a_plan_fills_the_bottleneck_and_never_double_books() {
        let rooms = vec![member("resource:r1"), member("resource:r2")];
        let laser = vec![member("resource:laser")];
        // 20 laser visits of 50 held minutes for a laser open 600 minutes: 12 fit.
        let requests: Vec<Request> = (0..20)
            .map(|i| {
                let patient = vec![member(&format!("patient:{i}"))];
                request(vec![rooms.clone(), laser.clone(), patient], 40, 1)
            })
            .collect();
        let index = Index::new();
        let day = Span {
            from: 0,
            to: 600 * M,
        };
        let plan = plan(&index, &requests, requests_step());
        assert_eq!(plan.placed.len(), 12);
        assert_eq!(plan.unplaced.len(), 8);
        assert_eq!(bound(&index, &requests, day), 12 * 40 * M);
        // No holder is held twice at once.
        let mut check = Index::new();
        for p in &plan.placed {
            let r = &requests[p.request];
            let span = Span {
                from: p.start - r.before,
                to: p.start + r.len + r.after,
            };
            let k = keys(r, &p.picks);
            assert!(check.clashes(&k, span, None).is_empty());
            assert!(span.from >= 0 && span.to <= 600 * M);
            check.hold(Uuid::now_v7(), &k, span);
        }
    }

    #[test]
    fn the_linear_bound_sees_every_group_at_once() {
        // Laser visits and IPL visits share two rooms; each device is open 600 minutes.
        let rooms = vec![member("resource:r1"), member("resource:r2")];
        let laser = vec![member("resource:laser")];
        let ipl = vec![member("resource:ipl")];
        let mut requests: Vec<Request> = (0..20)
            .map(|_| request(vec![rooms.clone(), laser.clone()], 40, 0))
            .collect();
        requests.extend((0..20).map(|_| request(vec![rooms.clone(), ipl.clone()], 40, 0)));
        let index = Index::new();
        let day = Span {
            from: 0,
            to: 600 * M,
        };
        // One group at a time, the rooms (1200 minutes) are the limit: 24 visits. With the
        // laser open half the day (6 visits) that view still says 24; the linear one sees
        // 6 + 12 = 18.
        let knapsack = knapsack_bound(&index, &requests, day);
        assert_eq!(knapsack, 24 * 40 * M);
        let mut half = laser.clone();
        half[0].working = Some(vec![(0, 300 * M)]);
        let halved: Vec<Request> = requests
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, mut r)| {
                if i < 20 {
                    r.groups[1] = half.clone();
                }
                r
            })
            .collect();
        assert_eq!(knapsack_bound(&index, &halved, day), 24 * 40 * M);
        let lp = lp_bound(&index, &halved, day).unwrap_or(0);
        assert!((18 * 40 * M..=18 * 40 * M + 2 * M).contains(&lp), "{lp}");
        assert_eq!(bound(&index, &halved, day), lp);
        let found = plan(&index, &halved, 5 * M);
        assert_eq!(found.placed.len(), 18);
    }

    fn requests_step() -> i64 {
        5 * M
    }

    #[test]
    fn higher_priorities_are_placed_first() {
        let room = vec![member("resource:r1")];
        let mut requests: Vec<Request> = (0..12)
            .map(|_| request(vec![room.clone()], 50, 0))
            .collect();
        requests.push(request(vec![room.clone()], 50, 5));
        let plan = plan(&Index::new(), &requests, 5 * M);
        assert_eq!(plan.placed.len(), 10);
        assert!(plan.placed.iter().any(|p| p.request == 12));
    }
}
