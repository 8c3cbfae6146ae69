//! Resources and operators as the scheduler sees them: capacities, skills, and who holds
//! what. Allocation is all or nothing: a process gets every unit its step needs at once or
//! nothing at all, so no process ever holds part of what it needs while waiting for the
//! rest — the condition for deadlock never arises.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::pcb::{Allocation, Pid};

/// One resource instance: a room, a device, a stock lot, an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Unique id (`laser-room-1`).
    pub id: String,
    /// Its type (`laser_room`); `type` in the API and in storage.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Units it offers at once (1 for a room; the stock for a lot).
    #[serde(default = "one")]
    pub capacity: u32,
    /// Skills or certifications it carries.
    #[serde(default)]
    pub skills: BTreeSet<String>,
    /// Its working calendar: bookings of it must lie within its hours (none: always).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    /// The branch it stands in (none: it serves every branch); slot searches and plans
    /// for a branch take only its own and the shared ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

/// One unit request of a step, as the scheduler uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// Resource type.
    pub resource_type: String,
    /// Units.
    pub quantity: u32,
    /// Required skill, if any.
    pub skill: Option<String>,
    /// Kept while the process waits inside the step.
    pub hold_while_waiting: bool,
    /// Only this instance will do (a booked step takes the room its booking reserved,
    /// never another of its type).
    pub instance: Option<String>,
    /// Only instances standing in this branch or in none (a visit of 静安店 is consulted
    /// in 静安店's room).
    pub branch: Option<String>,
}

/// Every resource and its allocations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourcePool {
    resources: BTreeMap<String, Resource>,
    used: BTreeMap<String, BTreeMap<Pid, u32>>,
}

impl ResourcePool {
    /// Adds or replaces a resource (its allocations are kept).
    pub fn upsert(&mut self, resource: Resource) {
        self.resources.insert(resource.id.clone(), resource);
    }

    /// A resource by id.
    pub fn get(&self, id: &str) -> Option<&Resource> {
        self.resources.get(id)
    }

    /// Every resource.
    pub fn iter(&self) -> impl Iterator<Item = &Resource> {
        self.resources.values()
    }

    /// Units of `id` in use.
    pub fn in_use(&self, id: &str) -> u32 {
        self.used.get(id).map_or(0, |m| m.values().sum())
    }

    /// Who holds units of `id`.
    pub fn holders(&self, id: &str) -> Vec<(Pid, u32)> {
        self.used
            .get(id)
            .map_or_else(Vec::new, |m| m.iter().map(|(p, q)| (*p, *q)).collect())
    }

    /// Works out allocations for every need, or None if any cannot be met now. Nothing
    /// changes; `commit` applies the result. Types in `reserved` are not touched (an
    /// earlier process in the queue is waiting for them).
    pub fn plan(
        &self,
        needs: &[Need],
        reserved: &BTreeSet<String>,
    ) -> Result<Vec<Allocation>, Vec<String>> {
        let mut taken: BTreeMap<&str, u32> = BTreeMap::new();
        let mut out = Vec::new();
        let mut missing = Vec::new();
        for need in needs {
            if reserved.contains(&need.resource_type) {
                missing.push(need.resource_type.clone());
                continue;
            }
            let mut left = need.quantity;
            for r in self.resources.values().filter(|r| {
                r.resource_type == need.resource_type
                    && need.skill.as_ref().is_none_or(|s| r.skills.contains(s))
                    && need.instance.as_ref().is_none_or(|i| *i == r.id)
                    && need
                        .branch
                        .as_ref()
                        .is_none_or(|b| r.branch.as_ref().is_none_or(|rb| rb == b))
            }) {
                if left == 0 {
                    break;
                }
                let already = taken.get(r.id.as_str()).copied().unwrap_or(0);
                let free = r.capacity.saturating_sub(self.in_use(&r.id) + already);
                let take = free.min(left);
                if take > 0 {
                    *taken.entry(r.id.as_str()).or_default() += take;
                    out.push(Allocation {
                        resource: r.id.clone(),
                        quantity: take,
                        hold_while_waiting: need.hold_while_waiting,
                    });
                    left -= take;
                }
            }
            if left > 0 {
                missing.push(need.resource_type.clone());
            }
        }
        if missing.is_empty() {
            Ok(out)
        } else {
            Err(missing)
        }
    }

    /// Records allocations planned by `plan` for `pid`.
    pub fn commit(&mut self, pid: Pid, allocations: &[Allocation]) {
        for a in allocations {
            *self
                .used
                .entry(a.resource.clone())
                .or_default()
                .entry(pid)
                .or_default() += a.quantity;
        }
    }

    /// Releases the given allocations of `pid`.
    pub fn release(&mut self, pid: Pid, allocations: &[Allocation]) {
        for a in allocations {
            if let Some(m) = self.used.get_mut(&a.resource) {
                if let Some(q) = m.get_mut(&pid) {
                    *q = q.saturating_sub(a.quantity);
                    if *q == 0 {
                        m.remove(&pid);
                    }
                }
                if m.is_empty() {
                    self.used.remove(&a.resource);
                }
            }
        }
    }

    /// Whether any resource is allocated beyond its capacity (never, if the scheduler is right).
    pub fn over_allocated(&self) -> Vec<String> {
        self.resources
            .values()
            .filter(|r| self.in_use(&r.id) > r.capacity)
            .map(|r| r.id.clone())
            .collect()
    }

    /// Every (resource, pid, units) allocation.
    pub fn allocations(&self) -> Vec<(String, Pid, u32)> {
        self.used
            .iter()
            .flat_map(|(r, m)| m.iter().map(move |(p, q)| (r.clone(), *p, *q)))
            .collect()
    }
}

/// A person (or a system agent) who can handle steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// User id.
    pub id: String,
    /// Roles held.
    #[serde(default)]
    pub roles: BTreeSet<String>,
    /// Skills held.
    #[serde(default)]
    pub skills: BTreeSet<String>,
    /// How many steps they can work on at once.
    #[serde(default = "one")]
    pub capacity: u32,
    /// The department they belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Their working calendar: outside its hours nothing new is dispatched to them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    /// The branch they work at (none: every branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

fn one() -> u32 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(id: &str) -> Resource {
        Resource {
            id: id.into(),
            resource_type: "laser_room".into(),
            capacity: 1,
            skills: BTreeSet::new(),
            calendar: None,
            branch: None,
        }
    }

    fn need(t: &str, q: u32) -> Need {
        Need {
            resource_type: t.into(),
            quantity: q,
            skill: None,
            hold_while_waiting: false,
            instance: None,
            branch: None,
        }
    }

    #[test]
    fn allocation_is_all_or_nothing() {
        let mut pool = ResourcePool::default();
        pool.upsert(room("r1"));
        pool.upsert(Resource {
            id: "d1".into(),
            resource_type: "laser_device".into(),
            capacity: 1,
            skills: BTreeSet::new(),
            calendar: None,
            branch: None,
        });
        let both = [need("laser_room", 1), need("laser_device", 1)];
        let plan = pool.plan(&both, &BTreeSet::new());
        let Ok(allocs) = plan else {
            panic!("should fit")
        };
        pool.commit(1, &allocs);
        // The room alone is free for nobody now, and a request for room + device gets neither.
        assert_eq!(
            pool.plan(&both, &BTreeSet::new()),
            Err(vec!["laser_room".into(), "laser_device".into()])
        );
        pool.release(1, &allocs);
        assert!(pool.allocations().is_empty());
        assert!(
            pool.plan(&[need("laser_room", 2)], &BTreeSet::new())
                .is_err()
        );
    }
}
