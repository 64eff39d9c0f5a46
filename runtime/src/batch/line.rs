//! The order a queue dispatches its RUNNABLE jobs in: first in, first out, or, on a queue with a
//! fair-share scheduling policy, by share.
//!
//! A FIFO queue is one line in submission order. A fair-share queue keeps a line per share
//! identifier (higher `schedulingPriority` first, then submission order) and gives the next
//! capacity to the share whose usage, times its weight, is lowest (a lower weight gets more).
//! Usage is what AWS describes: the vCPU-seconds of a share's attempts, running and recently
//! finished, decayed over `shareDecaySeconds` — here exponentially, with that as the time
//! constant, plus, for each attempt still running, the vCPU-seconds it is expected to use (the
//! share's recent attempt length), so that a burst of placements at one instant alternates
//! between shares instead of handing all free capacity to whoever is first.
//!
//! Choosing must not scan every share or job (issue 15: 100,000 jobs in 1,000 shares). Usage is
//! kept scaled by `e^(t/τ)`: decay then changes nobody's value, and a share's scaled usage only
//! grows while its attempts run, so the key a share was filed under is a lower bound of its key
//! now. The shares with waiting jobs are kept ordered by those keys; choosing takes the first,
//! brings its key up to now and, if it is still no more than the next one's (a lower bound),
//! it is the least used; otherwise it is filed again and the next is tried. Each share is
//! brought up to date at most once per choice, and only shares with running attempts can be out
//! of date at all.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::model::EpochMillis;
use crate::model::scheduling::FairsharePolicy;

use super::snapshot::{FrontOfQueueJob, QueueSnapshot, ShareUsage};

/// Where a job waits within its share: higher scheduling priority first, then submission order.
type Place = (Reverse<i32>, u64);

/// Scaled values past `e^LIMIT` are brought back to a later epoch (every share at once), long
/// before an `f64` could overflow.
const REBASE_AFTER: f64 = 300.0;

/// How long, in seconds, an attempt is expected to run before its share has seen one end.
const FIRST_EXPECTED_SECONDS: f64 = 1.0;

/// A share idle for this many decay windows has usage of e^-8 of what it was: forgotten.
const FORGET_AFTER_WINDOWS: f64 = 8.0;

/// FNV-1a: the maps here are keyed by short share names and sequences the service chose or
/// checked, hashed on every placement, where SipHash's resistance to chosen keys buys nothing
/// (a share identifier is at most 255 letters and digits, and the map holds at most the shares
/// in use) and costs a third of a decision.
#[derive(Default)]
struct FnvHasher(u64);

impl Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = hash;
    }
}

type Fnv = BuildHasherDefault<FnvHasher>;

/// A queue's RUNNABLE jobs in dispatch order, and, on a fair-share queue, each share's usage.
pub(crate) struct Line {
    /// The policy's parameters; `None` on a FIFO queue.
    policy: Option<FairsharePolicy>,
    /// Time constant of the decay, seconds.
    tau: f64,
    /// Times are seconds since this moment; scaled values are relative to it.
    epoch: EpochMillis,
    shares: HashMap<Arc<str>, Share, Fnv>,
    /// Shares with waiting jobs, by the key they were filed under (see the module doc), then
    /// by name.
    order: BTreeSet<(u64, Arc<str>)>,
    /// Attempts placed from this line and not yet ended, by job sequence: their share, vCPUs
    /// and expected use.
    running: HashMap<u64, Running, Fnv>,
    /// vCPUs the line's running attempts hold.
    running_vcpus: f64,
    /// Shares with jobs waiting or running.
    busy_shares: u32,
    /// Shares idle (nothing waiting or running) for less than a decay window, by when they
    /// became idle: still active, as AWS counts shares against the reservation.
    recently_idle: BTreeSet<(u64, Arc<str>)>,
    /// Shares idle for longer, until their usage has decayed to nothing and they are forgotten.
    faded: BTreeSet<(u64, Arc<str>)>,
    /// Jobs that no environment of the queue can ever hold, set aside so they block nobody,
    /// with why and since when: sequence → (id, reason code, since).
    pub(crate) misfits: BTreeMap<u64, Misfit>,
}

/// A job set aside because no environment of its queue could ever hold it.
pub(crate) struct Misfit {
    pub(crate) id: String,
    /// The AWS reason code, e.g. `MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT`.
    pub(crate) reason: &'static str,
    pub(crate) since: EpochMillis,
}

struct Share {
    waiting: BTreeMap<Place, Waiting>,
    weight: f64,
    /// Decayed vCPU-seconds of ended attempts and of running ones up to `as_of`, scaled by
    /// `e^(as_of/τ)`.
    used: f64,
    /// Seconds since the epoch that `used` is brought up to.
    as_of: f64,
    /// `e^(as_of/τ)`, kept to spare an `exp` per refresh.
    as_of_scale: f64,
    running_vcpus: f64,
    /// Sum over running attempts of vCPUs × expected seconds.
    expected: f64,
    /// Recent attempt length, seconds (a moving average).
    attempt_seconds: f64,
    /// The key the share is filed under in `order`, while it has waiting jobs.
    filed: Option<u64>,
    /// When it became idle (no job waiting or running), seconds since the epoch.
    idle_since: Option<f64>,
}

struct Waiting {
    /// The job's own id, shared with the state's map of jobs.
    id: Arc<str>,
    vcpus: f32,
    since: EpochMillis,
}

struct Running {
    share: Arc<str>,
    vcpus: f64,
    expected: f64,
    started: f64,
}

/// A job as the line needs to know it.
pub(crate) struct LineJob<'a> {
    pub(crate) id: Arc<str>,
    pub(crate) sequence: u64,
    pub(crate) share: Option<&'a str>,
    pub(crate) priority: Option<i32>,
    pub(crate) vcpus: f64,
}

impl Line {
    /// An empty line; fair share if `policy` is given.
    pub(crate) fn new(policy: Option<FairsharePolicy>, now: EpochMillis) -> Self {
        let tau = policy
            .as_ref()
            .map_or(1.0, |p| f64::from(p.decay_seconds()));
        Self {
            policy,
            tau,
            epoch: now,
            shares: HashMap::default(),
            order: BTreeSet::new(),
            running: HashMap::default(),
            running_vcpus: 0.0,
            busy_shares: 0,
            recently_idle: BTreeSet::new(),
            faded: BTreeSet::new(),
            misfits: BTreeMap::new(),
        }
    }

    /// Whether this is a fair-share line.
    pub(crate) fn is_fair_share(&self) -> bool {
        self.policy.is_some()
    }

    /// Takes a new policy (or the same one changed): weights and decay apply from now, the
    /// usage so far is kept.
    pub(crate) fn set_policy(&mut self, policy: Option<FairsharePolicy>, now: EpochMillis) {
        if policy == self.policy {
            return;
        }
        let t = self.seconds(now);
        let old_tau = self.tau;
        self.tau = policy
            .as_ref()
            .map_or(1.0, |p| f64::from(p.decay_seconds()));
        self.policy = policy;
        let names: Vec<Arc<str>> = self.shares.keys().cloned().collect();
        for name in names {
            self.refresh(&name, t);
            let weight = self.weight_of(&name);
            let tau = self.tau;
            let share = self.shares.get_mut(&name).expect("listed");
            // Unscaled with the old window, scaled with the new one.
            let real = share.used * (-t / old_tau).exp();
            share.used = real * (t / tau).exp();
            share.weight = weight;
            self.file(&name, t);
        }
    }

    fn weight_of(&self, share: &str) -> f64 {
        self.policy.as_ref().map_or(1.0, |p| p.weight(share))
    }

    /// Seconds since the epoch, rebasing first if scaled values grew too large.
    fn seconds(&mut self, now: EpochMillis) -> f64 {
        let t = (now - self.epoch) as f64 / 1000.0;
        if t / self.tau > REBASE_AFTER {
            self.rebase(now);
            return 0.0;
        }
        t.max(0.0)
    }

    fn rebase(&mut self, now: EpochMillis) {
        let t = (now - self.epoch) as f64 / 1000.0;
        let names: Vec<Arc<str>> = self.shares.keys().cloned().collect();
        for name in &names {
            self.refresh(name, t);
        }
        let factor = (-t / self.tau).exp();
        for share in self.shares.values_mut() {
            share.used *= factor;
            share.as_of -= t;
            share.as_of_scale *= factor;
            share.idle_since = share.idle_since.map(|s| s - t);
        }
        for run in self.running.values_mut() {
            run.started -= t;
        }
        let shift = |set: &BTreeSet<(u64, Arc<str>)>| -> BTreeSet<(u64, Arc<str>)> {
            set.iter()
                .map(|(since, name)| {
                    (
                        (f64::from_bits(*since) - t).max(0.0).to_bits(),
                        name.clone(),
                    )
                })
                .collect()
        };
        self.recently_idle = shift(&self.recently_idle);
        self.faded = shift(&self.faded);
        self.epoch = now;
        for name in &names {
            self.file(name, 0.0);
        }
    }

    fn scale(&self, t: f64) -> f64 {
        (t / self.tau).exp()
    }

    /// Brings a share's usage up to `t`: its running attempts' vCPU-seconds since `as_of`.
    fn refresh(&mut self, name: &str, t: f64) {
        let tau = self.tau;
        let Some(share) = self.shares.get_mut(name) else {
            return;
        };
        if t <= share.as_of {
            return;
        }
        let now_scale = (t / tau).exp();
        if t > share.as_of {
            share.used += share.running_vcpus * tau * (now_scale - share.as_of_scale);
            share.as_of = t;
            share.as_of_scale = now_scale;
        }
    }

    /// The share's key at `t` (as brought up to date): weight × (usage + expected use of its
    /// running attempts), scaled; as bits, which order as the non-negative values do.
    fn key(&self, name: &str, t: f64) -> u64 {
        let share = &self.shares[name];
        let value = share.weight * (share.used + share.expected * self.scale(t));
        value.max(0.0).to_bits()
    }

    /// Files (or re-files) a share in `order` under its key at `t`, if it has waiting jobs.
    fn file(&mut self, name: &Arc<str>, t: f64) {
        if self.policy.is_none() {
            // FIFO: one share, always first.
            let share = self.shares.get_mut(name).expect("present");
            let filed = share.filed.take();
            if let Some(old) = filed {
                self.order.remove(&(old, name.clone()));
            }
            if !share.waiting.is_empty() {
                share.filed = Some(0);
                self.order.insert((0, name.clone()));
            }
            return;
        }
        let key = self.key(name, t);
        let share = self.shares.get_mut(name).expect("present");
        if let Some(old) = share.filed.take() {
            self.order.remove(&(old, name.clone()));
        }
        if !share.waiting.is_empty() {
            share.filed = Some(key);
            self.order.insert((key, name.clone()));
        }
    }

    fn share_name(&self, share: Option<&str>) -> Arc<str> {
        let name = if self.policy.is_some() {
            share.unwrap_or("")
        } else {
            ""
        };
        match self.shares.get_key_value(name) {
            Some((k, _)) => k.clone(),
            None => Arc::from(name),
        }
    }

    fn place_of(&self, job: &LineJob) -> Place {
        let priority = if self.policy.is_some() {
            job.priority.unwrap_or(0)
        } else {
            0
        };
        (Reverse(priority), job.sequence)
    }

    /// The share, created (idle since `t`) if new.
    fn share_mut(&mut self, name: &Arc<str>, t: f64) -> &mut Share {
        if !self.shares.contains_key(name) {
            let weight = self.weight_of(name);
            self.shares.insert(
                name.clone(),
                Share {
                    waiting: BTreeMap::new(),
                    weight,
                    used: 0.0,
                    as_of: t,
                    as_of_scale: (t / self.tau).exp(),
                    running_vcpus: 0.0,
                    expected: 0.0,
                    attempt_seconds: FIRST_EXPECTED_SECONDS,
                    filed: None,
                    idle_since: Some(t),
                },
            );
            self.recently_idle.insert((t.to_bits(), name.clone()));
        }
        self.shares.get_mut(name).expect("present")
    }

    /// Counts a share as busy if it was idle.
    fn wake(&mut self, name: &Arc<str>, t: f64) {
        let share = self.share_mut(name, t);
        if let Some(since) = share.idle_since.take() {
            let entry = (since.to_bits(), name.clone());
            if !self.recently_idle.remove(&entry) {
                self.faded.remove(&entry);
            }
            self.busy_shares += 1;
        }
    }

    /// Counts a share as idle if nothing of it waits or runs any more.
    fn maybe_idle(&mut self, name: &Arc<str>, t: f64) {
        let Some(share) = self.shares.get_mut(name) else {
            return;
        };
        if share.idle_since.is_none() && share.waiting.is_empty() && share.running_vcpus <= 1e-9 {
            share.idle_since = Some(t);
            share.running_vcpus = 0.0;
            share.expected = 0.0;
            self.recently_idle.insert((t.to_bits(), name.clone()));
            self.busy_shares -= 1;
        }
    }

    /// Moves shares idle for a decay window out of the active count, and forgets those idle
    /// for many (their usage has decayed to nothing).
    fn age(&mut self, t: f64) {
        let tau = self.tau;
        while let Some(first) = self.recently_idle.first()
            && t - f64::from_bits(first.0) >= tau
        {
            let first = self.recently_idle.pop_first().expect("seen");
            self.faded.insert(first);
        }
        while let Some(first) = self.faded.first()
            && t - f64::from_bits(first.0) >= FORGET_AFTER_WINDOWS * tau
        {
            let (_, name) = self.faded.pop_first().expect("seen");
            self.shares.remove(&name);
        }
    }

    /// Shares active now: with jobs waiting or running, or idle for less than a decay window.
    pub(crate) fn active_shares(&mut self, now: EpochMillis) -> u32 {
        let t = self.seconds(now);
        self.age(t);
        self.busy_shares + self.recently_idle.len() as u32
    }

    /// Puts a RUNNABLE job in line.
    pub(crate) fn push(&mut self, job: LineJob, now: EpochMillis) {
        let t = self.seconds(now);
        let name = self.share_name(job.share);
        let place = self.place_of(&job);
        self.wake(&name, t);
        let share = self.shares.get_mut(&name).expect("woken");
        share.waiting.insert(
            place,
            Waiting {
                id: job.id,
                vcpus: job.vcpus as f32,
                since: now,
            },
        );
        if share.waiting.len() == 1 {
            self.refresh(&name, t);
            self.file(&name, t);
        }
    }

    /// Takes a job out of line (cancelled, failed, or placed). False if it was not in it.
    pub(crate) fn remove(&mut self, job: LineJob, now: EpochMillis) -> bool {
        let name = self.share_name(job.share);
        let place = self.place_of(&job);
        if let Some(misfit) = self.misfits.get(&job.sequence)
            && *misfit.id == *job.id
        {
            self.misfits.remove(&job.sequence);
            return true;
        }
        let Some(share) = self.shares.get_mut(&name) else {
            return false;
        };
        if share.waiting.remove(&place).is_none() {
            return false;
        }
        let t = self.seconds(now);
        if self.shares[&name].waiting.is_empty() {
            self.file(&name, t);
            self.maybe_idle(&name, t);
        }
        true
    }

    /// The job to dispatch next: the first of the least-used share (see the module doc), with
    /// its share. Changes nothing but how up to date the shares' keys are.
    pub(crate) fn head(&mut self, now: EpochMillis) -> Option<(Arc<str>, &str)> {
        let t = self.seconds(now);
        loop {
            let mut first_two = self.order.iter();
            let (filed, name) = first_two.next()?.clone();
            let next = first_two.next().map(|(k, _)| *k);
            if self.policy.is_some() {
                self.refresh(&name, t);
                let key = self.key(&name, t);
                if key != filed {
                    self.file(&name, t);
                }
                if next.is_some_and(|n| key > n) {
                    // Another share's lower bound is below this one's key: look at it.
                    continue;
                }
            }
            let share = &self.shares[&name];
            let (_, waiting) = share.waiting.first_key_value()?;
            return Some((name.clone(), &*waiting.id));
        }
    }

    /// Takes the first job of `share` out of line whatever it is (one the state does not know).
    pub(crate) fn drop_head(&mut self, share: &Arc<str>, now: EpochMillis) {
        let t = self.seconds(now);
        if let Some(s) = self.shares.get_mut(share) {
            s.waiting.pop_first();
            if s.waiting.is_empty() {
                self.file(share, t);
                self.maybe_idle(share, t);
            }
        }
    }

    /// Sets a job aside as one no environment of the queue can ever hold: out of line, so it
    /// holds up nobody, until the queue or its environments change.
    pub(crate) fn set_aside(&mut self, job: LineJob, reason: &'static str, now: EpochMillis) {
        let (id, sequence) = (job.id.to_string(), job.sequence);
        self.remove(job, now);
        self.misfits.insert(
            sequence,
            Misfit {
                id,
                reason,
                since: now,
            },
        );
    }

    /// Records that `job` was placed: out of line, and counted in its share's usage until
    /// [`Line::ended`].
    pub(crate) fn placed(&mut self, job: LineJob, now: EpochMillis) {
        let t = self.seconds(now);
        let name = self.share_name(job.share);
        let place = self.place_of(&job);
        self.wake(&name, t);
        self.refresh(&name, t);
        let share = self.shares.get_mut(&name).expect("woken");
        share.waiting.remove(&place);
        let expected = job.vcpus * share.attempt_seconds;
        share.running_vcpus += job.vcpus;
        share.expected += expected;
        self.running_vcpus += job.vcpus;
        self.running.insert(
            job.sequence,
            Running {
                share: name.clone(),
                vcpus: job.vcpus,
                expected,
                started: t,
            },
        );
        self.file(&name, t);
    }

    /// Records that the attempt of the job with `sequence` ended (or never began): its vCPUs
    /// are free, its vCPU-seconds stay in its share's usage.
    pub(crate) fn ended(&mut self, sequence: u64, now: EpochMillis) {
        let Some(run) = self.running.remove(&sequence) else {
            return;
        };
        let t = self.seconds(now);
        self.refresh(&run.share, t);
        self.running_vcpus = (self.running_vcpus - run.vcpus).max(0.0);
        if let Some(share) = self.shares.get_mut(&run.share) {
            share.running_vcpus = (share.running_vcpus - run.vcpus).max(0.0);
            share.expected = (share.expected - run.expected).max(0.0);
            let seconds = (t - run.started).max(0.0);
            share.attempt_seconds = 0.8 * share.attempt_seconds + 0.2 * seconds.max(0.001);
        }
        self.file(&run.share, t);
        self.maybe_idle(&run.share, t);
    }

    /// Adds usage that happened before this process started (an attempt of `share` that ran
    /// from `started` to `stopped` with `vcpus`), as recovery finds it.
    pub(crate) fn charge(
        &mut self,
        share: Option<&str>,
        vcpus: f64,
        started: EpochMillis,
        stopped: EpochMillis,
        now: EpochMillis,
    ) {
        if self.policy.is_none() || stopped <= started {
            return;
        }
        let name = self.share_name(share);
        let t = self.seconds(now);
        // Decayed from when it ended, counted whole (it ran before any window closed).
        let seconds = (stopped - started) as f64 / 1000.0;
        let at = ((stopped - self.epoch) as f64 / 1000.0).min(t);
        let scaled = vcpus * seconds * self.scale(at);
        let share = self.share_mut(&name, t);
        share.used += scaled;
    }

    /// vCPUs this line may hold in all, of `capacity`: all of it on a FIFO queue; on a
    /// fair-share queue what the reservation for shares not yet active leaves, counting
    /// `share` as active.
    pub(crate) fn vcpu_limit(&mut self, capacity: f64, share: &str, now: EpochMillis) -> f64 {
        let Some(policy) = &self.policy else {
            return capacity;
        };
        if policy.compute_reservation.unwrap_or(0) <= 0 {
            return capacity;
        }
        // Only the percentage: the policy's share list is not copied on every placement.
        let reservation = FairsharePolicy {
            compute_reservation: policy.compute_reservation,
            ..FairsharePolicy::default()
        };
        let mut active = self.active_shares(now);
        let waking = self.shares.get(share).is_none_or(|s| {
            s.idle_since
                .is_some_and(|since| self.seconds_of(now) - since >= self.tau)
        });
        if waking {
            active += 1;
        }
        capacity * (1.0 - reservation.reserved_fraction(active))
    }

    fn seconds_of(&self, now: EpochMillis) -> f64 {
        ((now - self.epoch) as f64 / 1000.0).max(0.0)
    }

    /// vCPUs the line's running attempts hold.
    pub(crate) fn running_vcpus(&self) -> f64 {
        self.running_vcpus
    }

    /// The front of the line and the shares' usage, as GetJobQueueSnapshot reports them. The
    /// order is the one the scheduler would follow if nothing ended meanwhile: each job taken
    /// adds its expected use to its share's key.
    pub(crate) fn snapshot(
        &mut self,
        job_arn: impl Fn(&str) -> Option<String>,
        now: EpochMillis,
        most: usize,
    ) -> QueueSnapshot {
        let t = self.seconds(now);
        // Every share brought up to now, those only running too: their usage is reported.
        let all: Vec<Arc<str>> = self.shares.keys().cloned().collect();
        for name in &all {
            self.refresh(name, t);
        }
        let names: Vec<Arc<str>> = self.order.iter().map(|(_, n)| n.clone()).collect();
        let mut front = Vec::new();
        // (key, name) of each share with jobs left to list, and where its listing is.
        let mut heap = std::collections::BinaryHeap::new();
        let mut cursors: HashMap<Arc<str>, std::collections::btree_map::Iter<'_, Place, Waiting>> =
            HashMap::new();
        let scale = self.scale(t);
        for name in &names {
            let share = &self.shares[name];
            let key = share.weight * (share.used + share.expected * scale);
            heap.push(Reverse((key.max(0.0).to_bits(), name.clone())));
            cursors.insert(name.clone(), share.waiting.iter());
        }
        while front.len() < most {
            let Some(Reverse((key, name))) = heap.pop() else {
                break;
            };
            let share = &self.shares[&name];
            let Some((_, waiting)) = cursors.get_mut(&name).and_then(|c| c.next()) else {
                continue;
            };
            if let Some(job_arn) = job_arn(&waiting.id) {
                front.push(FrontOfQueueJob {
                    job_arn,
                    earliest_time_at_position: waiting.since,
                });
            }
            let next = f64::from_bits(key)
                + share.weight * f64::from(waiting.vcpus) * share.attempt_seconds * scale;
            heap.push(Reverse((next.to_bits(), name)));
        }
        let mut shares: Vec<ShareUsage> = if self.policy.is_some() {
            let active_within = self.tau;
            self.shares
                .iter()
                .filter(|(_, s)| s.idle_since.is_none_or(|since| t - since < active_within))
                .map(|(name, s)| ShareUsage {
                    share_identifier: name.to_string(),
                    weight_factor: s.weight,
                    vcpus_in_use: s.running_vcpus,
                    usage_vcpu_seconds: s.used / scale,
                    runnable_jobs: s.waiting.len() as u64,
                })
                .collect()
        } else {
            Vec::new()
        };
        shares.sort_by(|a, b| {
            b.vcpus_in_use
                .total_cmp(&a.vcpus_in_use)
                .then(b.usage_vcpu_seconds.total_cmp(&a.usage_vcpu_seconds))
                .then_with(|| a.share_identifier.cmp(&b.share_identifier))
        });
        let active_shares = if self.policy.is_some() {
            u64::from(self.active_shares(now))
        } else {
            0
        };
        QueueSnapshot {
            front_of_queue: front,
            last_updated_at: now,
            vcpus_in_use: self.running_vcpus,
            active_shares,
            shares,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::scheduling::ShareAttributes;

    fn fair(weights: &[(&str, f64)], reservation: i32) -> Line {
        Line::new(
            Some(FairsharePolicy {
                share_decay_seconds: Some(3600),
                compute_reservation: Some(reservation),
                share_distribution: weights
                    .iter()
                    .map(|(s, w)| ShareAttributes {
                        share_identifier: s.to_string(),
                        weight_factor: Some(*w),
                    })
                    .collect(),
            }),
            0,
        )
    }

    fn job<'a>(id: &str, sequence: u64, share: &'a str, priority: i32) -> LineJob<'a> {
        LineJob {
            id: id.into(),
            sequence,
            share: Some(share),
            priority: Some(priority),
            vcpus: 1.0,
        }
    }

    /// Runs `slots` one-vCPU slots for `steps` rounds of one-second jobs, always refilling from
    /// the head; returns the attempts each share got.
    fn run(
        line: &mut Line,
        jobs: &mut Vec<(String, u64, String)>,
        slots: usize,
        steps: usize,
    ) -> HashMap<String, usize> {
        let mut got = HashMap::new();
        let mut running: Vec<(String, u64, String)> = Vec::new();
        let mut now = 0;
        for _ in 0..steps {
            while running.len() < slots {
                let Some((share, id)) = line.head(now) else {
                    break;
                };
                let (share, id) = (share.to_string(), id.to_string());
                let i = jobs.iter().position(|j| j.0 == id).unwrap();
                let (id, seq, _) = jobs.remove(i);
                line.placed(job(&id, seq, &share, 0), now);
                *got.entry(share.clone()).or_insert(0) += 1;
                running.push((id, seq, share));
            }
            now += 1000;
            for (_, seq, _) in running.drain(..) {
                line.ended(seq, now);
            }
        }
        got
    }

    fn queue(line: &mut Line, share: &str, count: u64, first: u64) -> Vec<(String, u64, String)> {
        (first..first + count)
            .map(|seq| {
                let id = format!("{share}-{seq}");
                line.push(job(&id, seq, share, 0), 0);
                (id, seq, share.to_string())
            })
            .collect()
    }

    #[test]
    fn a_lower_weight_gets_proportionally_more_capacity() {
        let mut line = fair(&[("a", 1.0), ("b", 0.125)], 0);
        let mut jobs = queue(&mut line, "a", 2000, 0);
        jobs.extend(queue(&mut line, "b", 2000, 10_000));
        let got = run(&mut line, &mut jobs, 3, 300);
        let b = got["b"] as f64 / (got["a"] + got["b"]) as f64;
        assert!(
            (b - 8.0 / 9.0).abs() < 0.03,
            "b got {b:.3} of the capacity: {got:?}"
        );
    }

    #[test]
    fn a_late_share_goes_first_behind_any_number_of_jobs() {
        let mut line = fair(&[], 0);
        let mut jobs = queue(&mut line, "a", 1000, 0);
        run(&mut line, &mut jobs, 2, 10);
        line.push(job("late", 5000, "b", 0), 10_000);
        assert_eq!(
            line.head(10_000)
                .map(|(s, id)| (s.to_string(), id.to_string())),
            Some(("b".into(), "late".into()))
        );
    }

    #[test]
    fn within_a_share_higher_priority_goes_first_then_submission_order() {
        let mut line = fair(&[], 0);
        line.push(job("low", 1, "a", 1), 0);
        line.push(job("high", 2, "a", 9), 0);
        line.push(job("high-later", 3, "a", 9), 0);
        let mut order = Vec::new();
        while let Some((share, id)) = line.head(0) {
            let id = id.to_string();
            let seq = match id.as_str() {
                "low" => 1,
                "high" => 2,
                _ => 3,
            };
            let prio = if id == "low" { 1 } else { 9 };
            line.remove(job(&id, seq, share.as_ref(), prio), 0);
            order.push(id);
        }
        assert_eq!(order, ["high", "high-later", "low"]);
    }

    #[test]
    fn a_snapshot_counts_the_usage_of_attempts_still_running() {
        let mut line = fair(&[], 0);
        line.push(job("a1", 1, "a", 0), 0);
        line.placed(job("a1", 1, "a", 0), 0);
        let snapshot = line.snapshot(|_| None, 10_000, 100);
        let a = &snapshot.shares[0];
        assert_eq!((a.share_identifier.as_str(), a.vcpus_in_use), ("a", 1.0));
        assert!(
            (a.usage_vcpu_seconds - 10.0).abs() < 0.1,
            "10 s of one vCPU, barely decayed: {}",
            a.usage_vcpu_seconds
        );
    }

    #[test]
    fn a_fifo_line_ignores_shares_and_priorities() {
        let mut line = Line::new(None, 0);
        line.push(job("first", 1, "a", 0), 0);
        line.push(job("second", 2, "b", 9), 0);
        assert_eq!(
            line.head(0).map(|(_, id)| id.to_string()),
            Some("first".into())
        );
    }

    #[test]
    fn the_reservation_keeps_room_for_shares_not_yet_active() {
        let mut line = fair(&[], 50);
        line.push(job("a1", 1, "a", 0), 0);
        assert_eq!(
            line.vcpu_limit(8.0, "a", 0),
            4.0,
            "one active share: half kept"
        );
        line.placed(job("a1", 1, "a", 0), 0);
        assert_eq!(
            line.vcpu_limit(8.0, "b", 0),
            6.0,
            "with a second: a quarter kept"
        );
    }

    #[test]
    fn usage_decays_so_old_work_counts_less() {
        let mut line = fair(&[], 0);
        let now = 10_000_000; // 10,000 s; the window is 3,600 s
        // a ran 100 vCPU-seconds long ago (e^-2.75 of it is left, 6.4), b 10 just now.
        line.charge(Some("a"), 1.0, 0, 100_000, now);
        line.charge(Some("b"), 1.0, now - 10_000, now, now);
        line.push(job("a1", 1, "a", 0), now);
        line.push(job("b1", 2, "b", 0), now);
        assert_eq!(line.head(now).map(|(s, _)| s.to_string()), Some("a".into()));
    }
}
