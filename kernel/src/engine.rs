//! The process runtime: the scheduler core behind a lock, with storage around it.
//!
//! A command is applied to the core, and every history entry it produced is written —
//! with the PCB rows it leaves — in one transaction before anyone is answered, so an
//! acknowledged transition is durable. If the write fails, the core is rebuilt from
//! storage so memory never runs ahead of the disk. On start the core is rebuilt from the
//! stored PCBs, published services, resources and operators, and timers resume. The SQL of
//! the tables it keeps lives in `store` (`store::processes`, `store::services`, …); a row
//! that cannot be read back at the load is quarantined with its table and column. This
//! module must never answer before the transaction commits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use erpos_design::service::Service;
use serde_json::{Value as Json, json};
use tokio::sync::{Mutex, MutexGuard, broadcast, mpsc, oneshot, watch};

use crate::audit::Audit;
use crate::clock::Clock;
use crate::conditions::RhaiConditions;
use crate::db::{Db, Tx};
use crate::error::{KernelError, Result};
use crate::events::Events;
use crate::scheduler::{
    Command, Effect, HistoryEntry, Operator, Outcome, Pcb, Pid, Resource, Scheduler,
};
use crate::sql::Sql;
use crate::store::{self, Loaded};

pub use crate::store::processes::state_name;

/// The work a command does in its own transaction before the core applies it (see
/// [`Engine::command_with`]): it yields the command to apply.
pub type Prepared<'t> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Command>> + Send + 't>>;

/// A second command decided from the first one's result, inside the same critical section
/// and transaction (see [`Engine::command_then`]): e.g. the first step's decision, made
/// on the process a start has just created.
pub type FollowUp = Box<dyn FnOnce(&Scheduler, &Outcome) -> Result<Command> + Send>;

/// One priority level is worth this much waiting in READY.
pub const AGING_MS: i64 = 60_000;

/// A change broadcast to watchers (the WebSocket), in commit order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    /// Position in the stream of changes since this node started.
    pub seq: u64,
    /// The history entry.
    pub entry: HistoryEntry,
}

/// Transitions waiting for the writer: numbered, in the order the core made them.
struct Job {
    first_gseq: u64,
    entries: Vec<HistoryEntry>,
    ack: oneshot::Sender<std::result::Result<(), StoreFailure>>,
}

/// Why transitions were not stored, as the writer tells the commands waiting for it.
#[derive(Debug, Clone)]
struct StoreFailure {
    message: String,
    /// Storage itself failed (see `db::is_fault`): the command may be retried shortly.
    fault: bool,
}

impl StoreFailure {
    fn of(e: &KernelError) -> Self {
        StoreFailure {
            message: e.to_string(),
            fault: matches!(e, KernelError::Database(d) if crate::db::is_fault(d)),
        }
    }

    /// The error the command answers with: 503 during a storage fault, else 500.
    fn into_error(self) -> KernelError {
        let message = format!("transitions not stored: {}", self.message);
        if self.fault {
            KernelError::Unavailable(message)
        } else {
            KernelError::Corrupt(message)
        }
    }
}

/// What storing a batch of history entries takes: its statements, and whether they
/// enqueue events or notifications (whose workers are woken after the commit).
struct Storage {
    statements: Vec<Sql>,
    evented: bool,
    noticed: bool,
}

/// The most commands one group commit takes.
const MAX_BATCH: usize = 512;

/// What runs an automatic step's instructions: the rules engine's executor, attached
/// after both exist (it writes records, which the runtime does not know about). Returns
/// an error message to fail the process with.
pub trait AutomaticSteps: Send + Sync {
    /// Runs `instructions` for process `pcb` at `step`.
    fn run<'a>(
        &'a self,
        pcb: Pcb,
        step: &'a str,
        instructions: Vec<erpos_design::rule::Instruction>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<(), String>> + Send + 'a>,
    >;
}

/// The process runtime.
pub struct Engine {
    db: Db,
    events: Arc<Events>,
    automatic: std::sync::OnceLock<std::sync::Weak<dyn AutomaticSteps>>,
    core: Mutex<Scheduler>,
    conditions: RhaiConditions,
    clock: Arc<dyn Clock>,
    changes: broadcast::Sender<Change>,
    seq: std::sync::atomic::AtomicU64,
    writer: mpsc::UnboundedSender<Job>,
    /// (highest change number committed, number of failed batches so far): readers wait on
    /// it so that they never see a transition that is not durable yet.
    committed: watch::Sender<(u64, u64)>,
    /// Wakes the outbox worker when a commit enqueued notifications (shared with it).
    pub outbox_wake: Arc<tokio::sync::Notify>,
    /// Stored rows the last load could not read back.
    quarantine: std::sync::RwLock<Vec<Quarantined>>,
}

/// A stored row that could not be read back when the runtime was loaded. It is left in
/// storage untouched and out of the running system (a process is not scheduled, its number
/// is never reused), logged as an error, and listed by `/healthz`; an administrator repairs
/// or removes the row and restarts. One bad row never stops a start.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Quarantined {
    /// The table (`processes`, `services`, `resources`, `users`, `departments`, `delegations`).
    pub table: &'static str,
    /// The column whose value could not be read (`pcb`, `definition`).
    pub column: &'static str,
    /// The row's key (a process id, a service name and version, a user id, …).
    pub key: String,
    /// Why it could not be read, naming the table, the column and the row.
    pub error: String,
}

/// The rows skipped while loading (see [`Quarantined`]).
#[derive(Default)]
struct Skipped(Vec<Quarantined>);

impl Skipped {
    /// The value of a loaded row, or None after setting the row aside (logged).
    fn take<T>(&mut self, loaded: Loaded<T>) -> Option<T> {
        match loaded.value {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::error!(
                    table = e.table,
                    column = e.column,
                    key = %loaded.key,
                    error = %e,
                    "a stored row cannot be read back; it is quarantined (left in storage, out of the running system)"
                );
                self.0.push(Quarantined {
                    table: e.table,
                    column: e.column,
                    key: loaded.key,
                    error: e.to_string(),
                });
                None
            }
        }
    }
}

impl Engine {
    /// Loads the runtime from storage.
    pub async fn load(
        db: Db,
        clock: Arc<dyn Clock>,
        events: Arc<Events>,
        calendars: Arc<crate::calendars::Calendars>,
        definitions: Arc<crate::definitions::Definitions>,
    ) -> Result<Arc<Engine>> {
        let (core, quarantined) = Self::rebuild(&db).await?;
        let last = store::processes::last_change(&db).await?;
        let (changes, _) = broadcast::channel(4096);
        let (writer, jobs) = mpsc::unbounded_channel();
        let engine = Arc::new(Engine {
            db,
            events,
            automatic: std::sync::OnceLock::new(),
            core: Mutex::new(core),
            conditions: RhaiConditions::new()
                .with_calendars(calendars)
                .with_definitions(definitions),
            clock,
            changes,
            seq: std::sync::atomic::AtomicU64::new(last),
            writer,
            committed: watch::Sender::new((last, 0)),
            outbox_wake: Arc::new(tokio::sync::Notify::new()),
            quarantine: std::sync::RwLock::new(quarantined),
        });
        tokio::spawn(write_loop(Arc::downgrade(&engine), jobs));
        Ok(engine)
    }

    /// Reads everything the core needs back from storage. A row that cannot be decoded is
    /// skipped and returned as quarantined, so one bad row never stops a start.
    async fn rebuild(db: &Db) -> Result<(Scheduler, Vec<Quarantined>)> {
        let mut core = Scheduler::new(AGING_MS);
        let mut skipped = Skipped::default();
        for loaded in store::services::published(db).await? {
            if let Some(service) = skipped.take(loaded) {
                core.publish(service);
            }
        }
        let mut delegations: BTreeMap<String, Vec<crate::scheduler::Delegation>> = BTreeMap::new();
        for loaded in store::organisation::delegations(db).await? {
            if let Some(d) = skipped.take(loaded) {
                delegations.entry(d.user.clone()).or_default().push(d);
            }
        }
        for (user, list) in delegations {
            core.set_delegations(&user, list);
        }
        for loaded in store::resources::load(db).await? {
            if let Some(r) = skipped.take(loaded) {
                core.add_resource(r);
            }
        }
        for loaded in store::organisation::operators(db).await? {
            if let Some(op) = skipped.take(loaded) {
                core.add_operator(op);
            }
        }
        for loaded in store::organisation::departments(db).await? {
            if let Some(d) = skipped.take(loaded) {
                core.add_department(&d.name, d.parent.as_deref(), d.leader.as_deref());
            }
        }
        for loaded in store::processes::pcbs(db).await? {
            let key = loaded.key.clone();
            match skipped.take(loaded) {
                Some((_, pcb)) => core.restore(pcb),
                // Its number stays taken: a new process must never overwrite its row.
                None => {
                    if let Ok(pid) = key.parse() {
                        core.reserve_pid(pid);
                    }
                }
            }
        }
        Ok((core, skipped.0))
    }

    /// The stored rows that could not be read back at the last load (see [`Quarantined`]).
    pub fn quarantined(&self) -> Vec<Quarantined> {
        self.quarantine
            .read()
            .map(|q| q.clone())
            .unwrap_or_default()
    }

    /// Why process `pid` is quarantined, if it is.
    pub fn quarantined_process(&self, pid: Pid) -> Option<Quarantined> {
        let key = pid.to_string();
        self.quarantined()
            .into_iter()
            .find(|q| q.table == "processes" && q.key == key)
    }

    /// Attaches what runs automatic steps' instructions (once).
    pub fn attach_automatic(&self, runner: std::sync::Weak<dyn AutomaticSteps>) {
        let _ = self.automatic.set(runner);
    }

    /// The names of the published services (what rules may name).
    pub async fn service_names(&self) -> std::collections::BTreeSet<String> {
        self.read(|core| core.published().map(|s| s.name.clone()).collect())
            .await
    }

    /// Deadline alarms due now (the time service handles them).
    pub async fn alarms_due(&self) -> Vec<crate::scheduler::Alarm> {
        let now = self.clock.now_ms();
        self.read(|core| core.alarms_due(now)).await
    }

    /// Forgets a handled alarm.
    pub async fn clear_alarm(&self, alarm: &crate::scheduler::Alarm) {
        self.core.lock().await.clear_alarm(alarm);
    }

    /// The clock the runtime uses.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Subscribes to changes and takes a snapshot in one step: under the core lock, so no
    /// change falls between the snapshot and the subscription. Returns the snapshot, the
    /// sequence number it reflects (every change after it arrives on the receiver, possibly
    /// with some already included — skip `seq <= at`), and the receiver.
    pub async fn subscribe<T>(
        &self,
        snapshot: impl FnOnce(&Scheduler) -> T,
    ) -> (T, u64, broadcast::Receiver<Change>) {
        self.subscribe_at(|core, _| snapshot(core)).await
    }

    /// Like `subscribe`, the snapshot also told the change number it is taken at (so that
    /// it can decide what to build: a resume needs no full snapshot).
    pub async fn subscribe_at<T>(
        &self,
        snapshot: impl FnOnce(&Scheduler, u64) -> T,
    ) -> (T, u64, broadcast::Receiver<Change>) {
        let (core, at) = self.settled().await;
        let rx = self.changes.subscribe();
        (snapshot(&core, at), at, rx)
    }

    /// The core with everything applied to it committed: under the lock nothing new can be
    /// applied, so once the writer has caught up, memory and storage agree. Returns the lock
    /// and the change number they agree at. If the writer fails meanwhile, the lock is
    /// released (the writer needs it to rebuild the core) and the wait starts over.
    async fn settled(&self) -> (MutexGuard<'_, Scheduler>, u64) {
        loop {
            let core = self.core.lock().await;
            let target = self.seq.load(std::sync::atomic::Ordering::SeqCst);
            let mut rx = self.committed.subscribe();
            let failures = rx.borrow().1;
            let reached = rx
                .wait_for(|(done, failed)| *done >= target || *failed != failures)
                .await;
            match reached {
                Ok(state) if state.1 == failures => return (core, target),
                _ => drop(core),
            }
        }
    }

    /// Stored changes with a sequence number in `(after, upto]`, in order (resuming a
    /// stream after a reconnect).
    pub async fn changes_between(&self, after: u64, upto: u64) -> Result<Vec<Change>> {
        self.changes_page(after, upto, None, None).await
    }

    /// One page of `changes_between`: at most `limit` changes, only of the processes
    /// `pids` (when given; the filter is in the query, so what the caller may not see is
    /// never read). A WebSocket resume pages through a bounded window with it.
    pub async fn changes_page(
        &self,
        after: u64,
        upto: u64,
        pids: Option<&[Pid]>,
        limit: Option<usize>,
    ) -> Result<Vec<Change>> {
        let rows = store::processes::changes(&self.db, after, upto, pids, limit).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| match row {
                Ok((seq, entry)) => Some(Change { seq, entry }),
                // A change that cannot be read back is left out of the replay (logged,
                // naming the column), rather than ending every reconnecting client's
                // stream.
                Err(e) => {
                    tracing::error!(table = e.table, column = e.column, error = %e, "a stored history entry cannot be read back; left out of the replay");
                    None
                }
            })
            .collect())
    }

    /// Reads the core as it is applied, committed or not, without waiting for the writer:
    /// only for a use case that reads in order to act (is the process visible, what does
    /// its step allow). The act is a command, answered only once it is committed after
    /// everything it was based on, and refused with the rest if that commit fails; so the
    /// read needs no durability of its own. [`Self::read`] holds the core's lock until the
    /// writer has caught up, which stops every other command from joining the batch being
    /// written: a read before each act made the end-to-end bench five times slower.
    pub async fn read_applied<T>(&self, f: impl FnOnce(&Scheduler) -> T) -> T {
        let core = self.core.lock().await;
        f(&core)
    }

    /// Reads the core as it is committed (for lists, queues, snapshots): a reader never sees
    /// a transition that a crash could still lose.
    pub async fn read<T>(&self, f: impl FnOnce(&Scheduler) -> T) -> T {
        let (core, _) = self.settled().await;
        f(&core)
    }

    /// Applies a command, makes its changes durable, then answers. Commands from many
    /// callers are committed together (group commit); nobody is answered before the
    /// transaction holding their transitions has committed.
    pub async fn command(&self, command: Command) -> Result<Outcome> {
        let mut pending = vec![command];
        let mut first: Option<Outcome> = None;
        while let Some(command) = pending.pop() {
            let (outcome, ack) = {
                let mut core = self.core.lock().await;
                // What the command leaves must be storable and readable back.
                crate::limits::check_command(&core, &command)?;
                let now = self.clock.now_ms();
                let outcome = core
                    .apply(command, now, &self.conditions)
                    .map_err(KernelError::Process)?;
                let ack = if outcome.entries.is_empty() {
                    None
                } else {
                    let n = outcome.entries.len() as u64;
                    let first_gseq = self.seq.fetch_add(n, std::sync::atomic::Ordering::SeqCst) + 1;
                    let (tx, rx) = oneshot::channel();
                    let job = Job {
                        first_gseq,
                        entries: outcome.entries.clone(),
                        ack: tx,
                    };
                    if self.writer.send(job).is_err() {
                        return Err(KernelError::Corrupt("the writer has stopped".into()));
                    }
                    Some(rx)
                };
                (outcome, ack)
            };
            if let Some(ack) = ack {
                match ack.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        return Err(e.into_error());
                    }
                    Err(_) => return Err(KernelError::Corrupt("the writer has stopped".into())),
                }
            }
            for effect in &outcome.effects {
                let Effect::RunAutomatic { pid, step } = effect;
                pending.push(self.run_automatic(*pid, step).await);
            }
            if first.is_none() {
                first = Some(outcome);
            }
        }
        first.ok_or_else(|| KernelError::Corrupt("no outcome".into()))
    }

    /// Applies a command whose preparation writes to the database — a handler's edit of
    /// the bound record — so that the edit, the core's change and its history commit in
    /// one transaction: a refused command leaves no edit behind, and an accepted one never
    /// lacks its edit, even across a crash.
    ///
    /// `prepare` runs inside the transaction and returns the command to apply (carrying
    /// what it wrote, e.g. the record's snapshot). The core's lock is held from before the
    /// transaction begins until it commits, with every earlier change already stored, so
    /// these commands bypass the group commit and are serialised with all others: the
    /// price of atomicity, paid only by commands that carry an edit.
    pub async fn command_with<P>(&self, prepare: P) -> Result<Outcome>
    where
        P: for<'t> FnOnce(&'t mut Tx) -> Prepared<'t>,
    {
        self.command_then(prepare, None).await
    }

    /// [`Engine::command_with`], then `then`: a second command built from the core as the
    /// first left it, applied in the same critical section and committed in the same
    /// transaction. If `then` refuses (or its command is refused), the core is put back as
    /// it was before the first command and nothing is written: both happen, or neither.
    /// The price — a copy of the core — is paid only by commands that carry a follow-up.
    pub async fn command_then<P>(&self, prepare: P, then: Option<FollowUp>) -> Result<Outcome>
    where
        P: for<'t> FnOnce(&'t mut Tx) -> Prepared<'t>,
    {
        let outcome = {
            let (mut core, _) = self.settled().await;
            let mut tx = self.db.begin().await?;
            // An error here drops the transaction: nothing is written, the core untouched.
            let command = prepare(&mut tx).await?;
            crate::limits::check_command(&core, &command)?;
            let before = then.as_ref().map(|_| core.clone());
            let mut outcome = core
                .apply(command, self.clock.now_ms(), &self.conditions)
                .map_err(KernelError::Process)?;
            if let (Some(then), Some(before)) = (then, before) {
                let followed = then(&core, &outcome).and_then(|next| {
                    crate::limits::check_command(&core, &next)?;
                    core.apply(next, self.clock.now_ms(), &self.conditions)
                        .map_err(KernelError::Process)
                });
                match followed {
                    Ok(next) => {
                        outcome.entries.extend(next.entries);
                        outcome.effects.extend(next.effects);
                    }
                    Err(e) => {
                        // The transaction is dropped unwritten; memory goes back with it.
                        *core = before;
                        return Err(e);
                    }
                }
            }
            // From here memory has moved: the transaction commits or the core is rebuilt.
            let n = outcome.entries.len() as u64;
            let first_gseq = self.seq.fetch_add(n, std::sync::atomic::Ordering::SeqCst) + 1;
            let rows: Vec<(u64, &HistoryEntry)> = outcome
                .entries
                .iter()
                .enumerate()
                .map(|(i, e)| (first_gseq + i as u64, e))
                .collect();
            let stored = async {
                let (_, noticed) = self.write_rows(&mut tx, &rows).await?;
                tx.commit().await?;
                Ok::<_, KernelError>(noticed)
            }
            .await;
            match stored {
                Ok(noticed) => {
                    self.announce(&rows);
                    // The preparation may have queued record events of its own.
                    self.wake_after_commit(true, noticed);
                }
                Err(e) => {
                    tracing::error!(error = %e, "storing a command with its edit failed; rebuilding the core from storage");
                    self.reload(&mut core).await;
                    return Err(StoreFailure::of(&e).into_error());
                }
            }
            outcome
        };
        for effect in &outcome.effects {
            let Effect::RunAutomatic { pid, step } = effect;
            let next = self.run_automatic(*pid, step).await;
            self.command(next).await?;
        }
        Ok(outcome)
    }

    /// Tells watchers about committed changes, in order, and lets readers waiting for
    /// them through.
    fn announce(&self, rows: &[(u64, &HistoryEntry)]) {
        for (seq, entry) in rows {
            let _ = self.changes.send(Change {
                seq: *seq,
                entry: (*entry).clone(),
            });
        }
        if let Some((last, _)) = rows.last() {
            self.committed.send_modify(|c| c.0 = c.0.max(*last));
        }
    }

    /// After a failed write, memory has run ahead of the disk: the core is rebuilt from
    /// storage and the change numbers restart from the last stored one.
    async fn reload(&self, core: &mut Scheduler) {
        match Engine::rebuild(&self.db).await {
            Ok((fresh, quarantined)) => {
                *core = fresh;
                if let Ok(mut q) = self.quarantine.write() {
                    *q = quarantined;
                }
            }
            Err(e) => tracing::error!(error = %e, "rebuilding the core failed"),
        }
        if let Ok(last) = store::processes::last_change(&self.db).await {
            self.seq.store(last, std::sync::atomic::Ordering::SeqCst);
            self.committed.send_modify(|c| c.0 = last);
        }
    }

    /// Runs an automatic step's instructions. The full instruction set comes with the rules
    /// engine; until then, an instruction erpos cannot run fails the process, visibly,
    /// rather than being skipped.
    async fn run_automatic(&self, pid: Pid, step: &str) -> Command {
        let fail = |reason: String| Command::Fail {
            pid,
            by: "system".into(),
            reason,
        };
        let found = self
            .read(|core| {
                let pcb = core.pcb(pid)?;
                let svc = core.service(&pcb.service, pcb.version)?;
                Some((pcb.clone(), svc.step(step)?.instructions.clone()))
            })
            .await;
        let Some((pcb, instructions)) = found else {
            return fail(format!("step '{step}' vanished"));
        };
        if !instructions.is_empty() {
            let runner = self.automatic.get().and_then(std::sync::Weak::upgrade);
            let Some(runner) = runner else {
                return fail("no instruction runner is attached".into());
            };
            if let Err(message) = runner.run(pcb, step, instructions).await {
                return fail(format!("step '{step}': {message}"));
            }
        }
        Command::Complete {
            pid,
            transition: None,
            context: None,
            record: None,
            by: "system".into(),
        }
    }

    /// Writes history entries (with their global sequence numbers) and the PCB rows they
    /// leave, in one transaction, with multi-row inserts of a fixed size.
    async fn persist(&self, entries: &[(u64, &HistoryEntry)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        let (evented, noticed) = self.write_rows(&mut tx, entries).await?;
        tx.commit().await?;
        self.wake_after_commit(evented, noticed);
        Ok(())
    }

    /// Writes history entries and what they leave inside `tx`; returns whether events and
    /// notifications were enqueued (their workers are woken once `tx` commits).
    async fn write_rows(
        &self,
        tx: &mut Tx,
        entries: &[(u64, &HistoryEntry)],
    ) -> Result<(bool, bool)> {
        let storage = self.storage(entries)?;
        for sql in storage.statements {
            tx.execute(sql).await?;
        }
        Ok((storage.evented, storage.noticed))
    }

    /// Wakes the workers whose queues a commit added to.
    fn wake_after_commit(&self, evented: bool, noticed: bool) {
        if evented {
            self.events.wake.notify_one();
        }
        if noticed {
            self.outbox_wake.notify_one();
        }
    }

    /// The statements that store history entries and the PCB rows they leave, with the
    /// events and notifications they raise (committed with them).
    fn storage(&self, entries: &[(u64, &HistoryEntry)]) -> Result<Storage> {
        let mut statements =
            store::processes::write_sql(self.db.dialect(), entries, self.clock.now_ms())?;
        let interest = self.events.interest();
        let mut evented = false;
        if !interest.is_empty() {
            for (_, e) in entries {
                let found = self.events.process_events(&interest, e);
                evented |= !found.is_empty();
                statements.extend(found);
            }
        }
        // Step notifications go out through the outbox, committed with the change.
        let mut noticed = false;
        for (_, e) in entries {
            for n in &e.notices {
                let delivery = crate::store::outbox::Delivery {
                    kind: crate::store::outbox::Kind::Notify,
                    payload: serde_json::json!({
                        "to": n.to, "title": n.title, "body": n.body, "process": e.pid,
                    }),
                    due_ms: e.at_ms,
                    rule: None,
                    event_seq: None,
                };
                statements.push(crate::store::outbox::enqueue_sql(
                    &self.db, &delivery, e.at_ms,
                ));
                noticed = true;
            }
        }
        Ok(Storage {
            statements,
            evented,
            noticed,
        })
    }

    /// Stores and publishes a service version (already validated and numbered).
    pub async fn publish(
        &self,
        service: Service,
        notes: Option<&str>,
        audit: &Audit,
    ) -> Result<()> {
        let d = self.db.dialect();
        let sql = store::services::publish_sql(d, &service, audit.actor(), notes)?;
        let audit = audit.row(d, &service.name);
        let mut core = self.core.lock().await;
        self.db.write_atomically(vec![sql, audit]).await?;
        core.publish(service);
        Ok(())
    }

    /// Stores a resource (or replaces it) and makes it schedulable.
    pub async fn put_resource(
        &self,
        resource: Resource,
        definition: &Json,
        audit: Sql,
    ) -> Result<()> {
        let sql = store::resources::put_sql(self.db.dialect(), &resource, definition);
        let mut core = self.core.lock().await;
        self.db.write_atomically(vec![sql, audit]).await?;
        core.add_resource(resource);
        Ok(())
    }

    /// Stores a department (the statements are the caller's: the row and its audit row)
    /// and puts it in the tree the scheduler resolves participants with.
    pub async fn put_department(
        &self,
        statements: Vec<Sql>,
        name: &str,
        parent: Option<&str>,
        leader: Option<&str>,
    ) -> Result<()> {
        {
            let mut core = self.core.lock().await;
            self.db.write_atomically(statements).await?;
            core.add_department(name, parent, leader);
        }
        // Members of a new branch of the tree may now be dispatched.
        self.command(Command::Tick).await.map(|_| ())
    }

    /// The sandboxed expression evaluator (for checks outside a process, like `may_start`).
    pub fn conditions(&self) -> &RhaiConditions {
        &self.conditions
    }

    /// Replaces a user's delegations in the scheduler (after they were stored).
    pub async fn set_delegations(&self, user: &str, list: Vec<crate::scheduler::Delegation>) {
        self.core.lock().await.set_delegations(user, list);
    }

    /// Stores an operator (user) and makes them available for dispatch; `also` (their
    /// password's row, the audit row) is written in the same transaction.
    pub async fn put_operator(&self, operator: Operator, also: Vec<Sql>) -> Result<Outcome> {
        let sql = store::organisation::put_user_sql(self.db.dialect(), &operator)?;
        {
            let mut core = self.core.lock().await;
            let mut statements = vec![sql];
            statements.extend(also);
            self.db.write_atomically(statements).await?;
            core.add_operator(operator);
        }
        // A new operator may let waiting work be dispatched.
        self.command(Command::Tick).await
    }

    /// The stored history of a process, oldest first.
    pub async fn history(&self, pid: Pid) -> Result<Vec<Json>> {
        let entries = store::processes::history(&self.db, pid).await?;
        Ok(entries
            .into_iter()
            .map(|e| match e.pcb {
                Ok(pcb) => json!({
                    "seq": e.seq, "at": e.at, "by": e.by, "from": e.from, "to": e.to,
                    "reason": e.reason,
                    "step": pcb.get("step"), "context": pcb.get("context"),
                    // The bound record as it was at this entry (all its fields).
                    "record": pcb.get("context").and_then(|c| c.get("record")),
                    "pcb": pcb,
                }),
                // One entry that cannot be read back is shown as such; the rest of the
                // history still answers.
                Err(error) => {
                    tracing::error!(pid, seq = e.seq, error = %error, "a stored history entry cannot be read back");
                    json!({
                        "seq": e.seq, "at": e.at, "by": e.by, "from": e.from, "to": e.to,
                        "reason": e.reason,
                        "step": null, "context": null, "record": null, "pcb": null,
                        "unreadable": error.to_string(),
                    })
                }
            })
            .collect())
    }

    /// Fires due timers now and then, until the runtime is dropped.
    pub fn spawn_timer(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(engine) = weak.upgrade() else { break };
                let now = engine.now_ms();
                let next = engine.read(|c| c.next_timer()).await;
                if next.is_some_and(|at| at <= now)
                    && let Err(e) = engine.command(Command::Tick).await
                {
                    tracing::warn!(error = %e, "timer tick failed");
                }
                let wait = next.map_or(1_000, |at| (at - now).clamp(10, 1_000));
                drop(engine);
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
        })
    }
}

/// The writer: takes every queued job, commits them in one transaction, then answers and
/// broadcasts in order. On failure, memory has run ahead of the disk: everything queued is
/// failed and the core is rebuilt from storage under its lock.
async fn write_loop(engine: std::sync::Weak<Engine>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let Some(engine) = engine.upgrade() else {
            for job in batch {
                let _ = job.ack.send(Err(StoreFailure {
                    message: "the runtime is shutting down".into(),
                    fault: false,
                }));
            }
            break;
        };
        let rows: Vec<(u64, &HistoryEntry)> = batch
            .iter()
            .flat_map(|j| {
                j.entries
                    .iter()
                    .enumerate()
                    .map(move |(i, e)| (j.first_gseq + i as u64, e))
            })
            .collect();
        match engine.persist(&rows).await {
            Ok(()) => {
                engine.announce(&rows);
                for job in batch {
                    let _ = job.ack.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "storing transitions failed; rebuilding the core from storage");
                // Release readers waiting for this batch: they hold the core lock.
                engine.committed.send_modify(|c| c.1 += 1);
                let mut core = engine.core.lock().await;
                let failure = StoreFailure::of(&e);
                for job in batch {
                    let _ = job.ack.send(Err(failure.clone()));
                }
                while let Ok(job) = jobs.try_recv() {
                    let _ = job.ack.send(Err(failure.clone()));
                }
                engine.reload(&mut core).await;
            }
        }
    }
}
