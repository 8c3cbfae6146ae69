//! The kernel's interval index of bookings: per holder (a resource, an operator), the spans
//! it is held, which never overlap. Pure and in memory, so a booking is decided — and a
//! conflict named, and the next free start found — without a query; the database refuses
//! an overlap too (see `store::bookings`), so the index is a fast path, never the only
//! guard.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

pub use erpos_design::booking::Span;

/// One booking a request would overlap on one holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clash {
    /// The holder both want.
    pub holder: String,
    /// The booking that holds it.
    pub booking: Uuid,
    /// When that booking holds it.
    pub held: Span,
}

/// Per holder, its held spans by start, each with the booking holding it.
#[derive(Debug, Default, Clone)]
pub struct Index {
    by_holder: HashMap<String, BTreeMap<i64, (i64, Uuid)>>,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every booking other than `except` that holds one of `holders` during `span`.
    pub fn clashes(&self, holders: &[String], span: Span, except: Option<Uuid>) -> Vec<Clash> {
        let mut out = Vec::new();
        for holder in holders {
            let Some(spans) = self.by_holder.get(holder) else {
                continue;
            };
            // Spans on one holder never overlap, so only those starting before `span` ends
            // and ending after it starts can clash: walk back from its end.
            for (&from, &(to, booking)) in spans.range(..span.to).rev() {
                if to <= span.from {
                    break;
                }
                if Some(booking) != except {
                    out.push(Clash {
                        holder: holder.clone(),
                        booking,
                        held: Span { from, to },
                    });
                }
            }
        }
        out.sort_by(|a, b| (a.held.from, &a.holder).cmp(&(b.held.from, &b.holder)));
        out
    }

    /// Records that `booking` holds every one of `holders` during `span`.
    pub fn hold(&mut self, booking: Uuid, holders: &[String], span: Span) {
        for holder in holders {
            self.by_holder
                .entry(holder.clone())
                .or_default()
                .insert(span.from, (span.to, booking));
        }
    }

    /// Forgets what `booking` holds of `holders` during `span`.
    pub fn release(&mut self, booking: Uuid, holders: &[String], span: Span) {
        for holder in holders {
            if let Some(spans) = self.by_holder.get_mut(holder) {
                if spans.get(&span.from).is_some_and(|(_, b)| *b == booking) {
                    spans.remove(&span.from);
                }
                if spans.is_empty() {
                    self.by_holder.remove(holder);
                }
            }
        }
    }

    /// The earliest start at or after `from`, and before `until`, at which every one of
    /// `holders` is free for `len` milliseconds (ignoring `except`) and `fits` says the
    /// span may be held (calendars); candidates are `from` and the ends of the spans in the
    /// way, so the answer is exact for the index. None when there is none before `until`.
    pub fn next_free(
        &self,
        holders: &[String],
        from: i64,
        len: i64,
        until: i64,
        except: Option<Uuid>,
        fits: impl Fn(Span) -> Option<i64>,
    ) -> Option<i64> {
        let mut start = from;
        // Every step moves `start` past a span in the way or to the next working time: at
        // most a few per span, bounded by the spans and the calendar's days.
        for _ in 0..10_000 {
            if start >= until {
                return None;
            }
            let span = Span {
                from: start,
                to: start + len,
            };
            let clashes = self.clashes(holders, span, except);
            if let Some(latest) = clashes.iter().map(|c| c.held.to).max() {
                start = latest;
                continue;
            }
            match fits(span) {
                None => return Some(start),
                Some(later) if later > start => start = later,
                Some(_) => return None,
            }
        }
        None
    }

    /// The end of `holder`'s last hold ending at or before `span` starts, and the start of
    /// its first hold starting at or after `span` ends.
    pub fn neighbours(&self, holder: &str, span: Span) -> (Option<i64>, Option<i64>) {
        let Some(spans) = self.by_holder.get(holder) else {
            return (None, None);
        };
        let before = spans
            .range(..=span.from)
            .rev()
            .map(|(_, (to, _))| *to)
            .find(|to| *to <= span.from);
        let after = spans.range(span.to..).next().map(|(from, _)| *from);
        (before, after)
    }

    /// How long `holder` is held within `span`, ms (what capacity planning calls load).
    pub fn held_within(&self, holder: &str, span: Span) -> i64 {
        let Some(spans) = self.by_holder.get(holder) else {
            return 0;
        };
        spans
            .range(..span.to)
            .rev()
            .take_while(|(_, (to, _))| *to > span.from)
            .map(|(&from, &(to, _))| to.min(span.to) - from.max(span.from))
            .sum()
    }

    /// How many spans are held, over every holder.
    pub fn len(&self) -> usize {
        self.by_holder.values().map(BTreeMap::len).sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.by_holder.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(from: i64, to: i64) -> Span {
        Span { from, to }
    }

    #[test]
    fn touching_spans_do_not_clash_and_overlapping_ones_do() {
        let mut index = Index::new();
        let a = Uuid::now_v7();
        let room = vec!["resource:room-a1".to_owned()];
        index.hold(a, &room, span(100, 200));
        assert!(index.clashes(&room, span(200, 300), None).is_empty());
        assert!(index.clashes(&room, span(0, 100), None).is_empty());
        let clash = index.clashes(&room, span(150, 250), None);
        assert_eq!(clash.len(), 1);
        assert_eq!(clash[0].booking, a);
        assert!(index.clashes(&room, span(150, 250), Some(a)).is_empty());
        assert_eq!(index.clashes(&room, span(0, 1000), None).len(), 1);
        index.release(a, &room, span(100, 200));
        assert!(index.is_empty());
    }

    #[test]
    fn the_next_free_start_skips_every_span_in_the_way() {
        let mut index = Index::new();
        let room = vec!["resource:room-a1".to_owned()];
        let doctor = vec!["operator:doc.wang".to_owned()];
        index.hold(Uuid::now_v7(), &room, span(100, 200));
        index.hold(Uuid::now_v7(), &doctor, span(200, 260));
        let both: Vec<String> = room.iter().chain(&doctor).cloned().collect();
        assert_eq!(
            index.next_free(&both, 120, 50, 10_000, None, |_| None),
            Some(260)
        );
        // A calendar that opens at 300 moves it on.
        let fits = |s: Span| (s.from < 300).then_some(300);
        assert_eq!(
            index.next_free(&both, 120, 50, 10_000, None, fits),
            Some(300)
        );
        assert_eq!(index.next_free(&both, 120, 50, 250, None, |_| None), None);
    }
}
