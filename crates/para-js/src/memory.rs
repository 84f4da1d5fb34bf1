//! The memory of function steps' runtimes.
//!
//! Every runtime [`run_function`](crate::run_function) creates allocates through a [`Meter`]
//! (QuickJS's allocator hook): each allocation is charged to the runtime's own limit (the
//! call's `memory_bytes`) and to one process-wide [`Budget`] shared by all runtimes. Past the
//! budget an allocation waits for other calls to free memory, for a bounded time and only
//! while some other call is still running (so that calls all waiting for each other cannot
//! hang), and is otherwise refused: QuickJS then throws its out-of-memory error, and the call
//! fails with a message naming the setting that raises the budget.
//!
//! Settings ([`SandboxMemoryConfig`]): the defaults unless set with
//! [`set_sandbox_memory_config`], which `para` does at start from
//! `PARA_FUNCTION_MEMORY_BUDGET_MB` (512), `PARA_FUNCTION_MEMORY_WAIT_MS` (1000) and
//! `PARA_FUNCTION_MEMORY_RETAIN_MB` (8).

use std::{
    cell::Cell,
    rc::Rc,
    sync::{
        Condvar, Mutex, Once,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use rquickjs::allocator::{Allocator, RustAllocator};

/// The process-wide settings of function steps' memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxMemoryConfig {
    /// What all function steps' runtimes together may hold (`PARA_FUNCTION_MEMORY_BUDGET_MB`,
    /// default 512 MiB: eight calls at the default 64 MiB limit at once, or hundreds of the
    /// usual calls that use well under 1 MiB).
    pub budget_bytes: usize,
    /// How long an allocation past the budget waits for other calls to free memory, within the
    /// call's own time limit (`PARA_FUNCTION_MEMORY_WAIT_MS`, default 1 s; 0: never wait).
    pub wait: Duration,
    /// A thread's runtime that reached more than this during a call is collected after it, and
    /// dropped (the next call builds a new one, about 3 ms) if it still holds more; the memory
    /// the thread freed is then handed back to the operating system. While the runtimes hold
    /// more than half the budget, a runtime is kept only under a quarter of this
    /// (`PARA_FUNCTION_MEMORY_RETAIN_MB`, default 8 MiB).
    pub retain_bytes: usize,
}

impl Default for SandboxMemoryConfig {
    fn default() -> Self {
        SandboxMemoryConfig {
            budget_bytes: 512 << 20,
            wait: Duration::from_secs(1),
            retain_bytes: 8 << 20,
        }
    }
}

/// Sets the process-wide settings (instead of the defaults). Takes effect for allocations
/// from then on; memory already held stays held.
pub fn set_sandbox_memory_config(config: SandboxMemoryConfig) {
    BUDGET.configure(config);
}

/// The settings in effect.
pub fn sandbox_memory_config() -> SandboxMemoryConfig {
    BUDGET.config()
}

/// What function steps' runtimes hold, process-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxMemory {
    /// The budget in effect.
    pub budget_bytes: usize,
    /// Held now by every runtime of the process (idle threads' runtimes included).
    pub in_use_bytes: usize,
    /// The most ever held at once, since the start or [`reset_sandbox_memory_peak`].
    pub peak_bytes: usize,
    /// Allocations that waited for room in the budget (and then got it or not).
    pub waits: u64,
    /// Allocations refused because the budget was exhausted.
    pub refusals: u64,
}

/// The process-wide figures.
pub fn sandbox_memory() -> SandboxMemory {
    BUDGET.figures()
}

/// Starts counting [`SandboxMemory::peak_bytes`] afresh from what is held now.
pub fn reset_sandbox_memory_peak() {
    BUDGET.peak.store(BUDGET.used.load(Ordering::SeqCst), Ordering::SeqCst);
}

/// The process's budget.
pub(crate) static BUDGET: Budget = Budget::new();

/// Memory shared by all runtimes: a counter charged by every runtime's allocator, with a limit.
pub(crate) struct Budget {
    used: AtomicUsize,
    peak: AtomicUsize,
    limit: AtomicUsize,
    wait_ms: AtomicU64,
    retain: AtomicUsize,
    configured: Once,
    /// Threads waiting in [`Budget::charge`]: a release wakes them only when there are some.
    waiters: AtomicUsize,
    waits: AtomicU64,
    refusals: AtomicU64,
    calls: Mutex<Calls>,
    changed: Condvar,
}

struct Calls {
    /// Calls in progress ([`Budget::enter`]).
    running: usize,
    /// Of those, the ones waiting for room.
    waiting: usize,
}

impl Budget {
    pub(crate) const fn new() -> Budget {
        Budget {
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            limit: AtomicUsize::new(512 << 20),
            wait_ms: AtomicU64::new(1000),
            retain: AtomicUsize::new(8 << 20),
            configured: Once::new(),
            waiters: AtomicUsize::new(0),
            waits: AtomicU64::new(0),
            refusals: AtomicU64::new(0),
            calls: Mutex::new(Calls { running: 0, waiting: 0 }),
            changed: Condvar::new(),
        }
    }

    fn store(&self, config: SandboxMemoryConfig) {
        self.limit.store(config.budget_bytes, Ordering::SeqCst);
        self.wait_ms
            .store(u64::try_from(config.wait.as_millis()).unwrap_or(u64::MAX), Ordering::SeqCst);
        self.retain.store(config.retain_bytes, Ordering::SeqCst);
    }

    pub(crate) fn configure(&self, config: SandboxMemoryConfig) {
        self.configured.call_once(|| {});
        self.store(config);
        // Waiters re-read the limit.
        let _calls = self.lock();
        self.changed.notify_all();
    }

    fn ensure_configured(&self) {
        self.configured.call_once(|| self.store(SandboxMemoryConfig::default()));
    }

    pub(crate) fn config(&self) -> SandboxMemoryConfig {
        self.ensure_configured();
        SandboxMemoryConfig {
            budget_bytes: self.limit.load(Ordering::SeqCst),
            wait: Duration::from_millis(self.wait_ms.load(Ordering::SeqCst)),
            retain_bytes: self.retain.load(Ordering::SeqCst),
        }
    }

    fn figures(&self) -> SandboxMemory {
        self.ensure_configured();
        SandboxMemory {
            budget_bytes: self.limit.load(Ordering::SeqCst),
            in_use_bytes: self.used.load(Ordering::SeqCst),
            peak_bytes: self.peak.load(Ordering::SeqCst),
            waits: self.waits.load(Ordering::SeqCst),
            refusals: self.refusals.load(Ordering::SeqCst),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A call in progress until the guard drops: while some call is running and not waiting,
    /// memory may still be freed, and waiting for it makes sense.
    pub(crate) fn enter(&self) -> Running<'_> {
        self.lock().running += 1;
        Running(self)
    }

    /// Charges `bytes` if they fit in the budget, without waiting.
    fn try_charge(&self, bytes: usize) -> bool {
        let limit = self.limit.load(Ordering::SeqCst);
        let mut used = self.used.load(Ordering::SeqCst);
        loop {
            let Some(after) = used.checked_add(bytes).filter(|&after| after <= limit) else {
                return false;
            };
            match self.used.compare_exchange_weak(used, after, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {
                    self.peak.fetch_max(after, Ordering::SeqCst);
                    return true;
                }
                Err(now) => used = now,
            }
        }
    }

    /// Charges `bytes`, waiting for room until `until` at most (and not at all when every
    /// running call is waiting: none of them would free anything). False: refused.
    pub(crate) fn charge(&self, bytes: usize, until: Option<Instant>) -> bool {
        self.ensure_configured();
        if self.try_charge(bytes) {
            return true;
        }
        let wait = Duration::from_millis(self.wait_ms.load(Ordering::SeqCst));
        let started = Instant::now();
        let until = match until {
            Some(deadline) => deadline.min(started + wait),
            None => started + wait,
        };
        let mut calls = self.lock();
        calls.waiting += 1;
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut waited = false;
        let charged = loop {
            // Under the lock, so a release between this attempt and the wait below cannot go
            // unnoticed: a release notifies while holding the lock.
            if self.try_charge(bytes) {
                break true;
            }
            if calls.waiting >= calls.running {
                break false;
            }
            let now = Instant::now();
            if now >= until {
                break false;
            }
            waited = true;
            calls =
                self.changed.wait_timeout(calls, until - now).unwrap_or_else(|e| e.into_inner()).0;
        };
        calls.waiting -= 1;
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        drop(calls);
        if waited {
            self.waits.fetch_add(1, Ordering::SeqCst);
        }
        if !charged {
            self.refusals.fetch_add(1, Ordering::SeqCst);
        }
        charged
    }

    pub(crate) fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _calls = self.lock();
            self.changed.notify_all();
        }
    }

    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }
}

/// A call in progress ([`Budget::enter`]).
pub(crate) struct Running<'a>(&'a Budget);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut calls = self.0.lock();
        calls.running -= 1;
        // One call fewer: waiters check again whether anyone is left to free memory.
        self.0.changed.notify_all();
    }
}

/// What one runtime holds, against its own limit and the budget. Shared between the runtime's
/// allocator and the sandbox that owns the runtime (one thread).
pub(crate) struct Meter {
    budget: &'static Budget,
    held: Cell<usize>,
    /// The most held since [`Meter::start_call`].
    peak: Cell<usize>,
    /// The runtime's own limit: the call's `memory_bytes`.
    limit: Cell<usize>,
    /// The call's deadline: a wait for room in the budget ends there at the latest.
    pub(crate) deadline: Cell<Option<Instant>>,
    /// An allocation was refused by the runtime's limit since [`Meter::start_call`].
    over_limit: Cell<bool>,
    /// An allocation was refused by the budget since [`Meter::start_call`].
    over_budget: Cell<bool>,
}

impl Meter {
    pub(crate) fn new(budget: &'static Budget, limit: usize) -> Rc<Meter> {
        Rc::new(Meter {
            budget,
            held: Cell::new(0),
            peak: Cell::new(0),
            limit: Cell::new(limit),
            deadline: Cell::new(None),
            over_limit: Cell::new(false),
            over_budget: Cell::new(false),
        })
    }

    /// A new call with this limit: the peak and the refusals start afresh.
    pub(crate) fn start_call(&self, limit: usize) {
        self.limit.set(limit);
        self.peak.set(self.held.get());
        self.over_limit.set(false);
        self.over_budget.set(false);
    }

    pub(crate) fn held(&self) -> usize {
        self.held.get()
    }

    pub(crate) fn peak(&self) -> usize {
        self.peak.get()
    }

    /// Whether an allocation was refused (the runtime ran out of memory) since the call began.
    pub(crate) fn refused(&self) -> bool {
        self.over_limit.get() || self.over_budget.get()
    }

    pub(crate) fn over_budget(&self) -> bool {
        self.over_budget.get()
    }

    fn charge(&self, bytes: usize) -> bool {
        let held = self.held.get();
        if held.saturating_add(bytes) > self.limit.get() {
            self.over_limit.set(true);
            return false;
        }
        if !self.budget.charge(bytes, self.deadline.get()) {
            self.over_budget.set(true);
            return false;
        }
        self.held.set(held + bytes);
        self.peak.set(self.peak.get().max(held + bytes));
        true
    }

    fn release(&self, bytes: usize) {
        // Exact by construction; saturating all the same (this runs inside QuickJS's free).
        self.held.set(self.held.get().saturating_sub(bytes));
        self.budget.release(bytes);
    }
}

/// QuickJS's allocator for a function step's runtime: Rust's global allocator (through
/// rquickjs's [`RustAllocator`], which puts the size in a header before each block), with every
/// block charged to the runtime's [`Meter`] before it is allocated.
pub(crate) struct Metered(pub(crate) Rc<Meter>);

/// What [`RustAllocator`] takes for `size` bytes: the size rounded up to 8, and its header.
fn footprint(size: usize) -> usize {
    size.div_ceil(8).saturating_mul(8).saturating_add(8)
}

// SAFETY: every block is allocated, resized and freed by `RustAllocator`, which meets the
// trait's contract; the metering only decides whether to call it, and counts sizes.
#[allow(unsafe_code)]
unsafe impl Allocator for Metered {
    fn alloc(&mut self, size: usize) -> *mut u8 {
        let bytes = footprint(size);
        if !self.0.charge(bytes) {
            return std::ptr::null_mut();
        }
        let ptr = RustAllocator.alloc(size);
        if ptr.is_null() {
            self.0.release(bytes);
        }
        ptr
    }

    fn calloc(&mut self, count: usize, size: usize) -> *mut u8 {
        // `RustAllocator::calloc` gives null for an empty request, and panics on overflow.
        let Some(total) = count.checked_mul(size).filter(|&total| total > 0) else {
            return std::ptr::null_mut();
        };
        let bytes = footprint(total);
        if !self.0.charge(bytes) {
            return std::ptr::null_mut();
        }
        let ptr = RustAllocator.calloc(count, size);
        if ptr.is_null() {
            self.0.release(bytes);
        }
        ptr
    }

    unsafe fn dealloc(&mut self, ptr: *mut u8) {
        // SAFETY: `ptr` came from this allocator (the caller's promise), so from RustAllocator.
        let bytes = unsafe { RustAllocator::usable_size(ptr) } + 8;
        unsafe { RustAllocator.dealloc(ptr) };
        self.0.release(bytes);
    }

    unsafe fn realloc(&mut self, ptr: *mut u8, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; QuickJS never resizes a null pointer through this hook.
        let old = unsafe { RustAllocator::usable_size(ptr) } + 8;
        let new = footprint(new_size);
        if new > old && !self.0.charge(new - old) {
            return std::ptr::null_mut();
        }
        let moved = unsafe { RustAllocator.realloc(ptr, new_size) };
        if moved.is_null() {
            if new > old {
                self.0.release(new - old);
            }
        } else if new < old {
            self.0.release(old - new);
        }
        moved
    }

    unsafe fn usable_size(ptr: *mut u8) -> usize {
        // SAFETY: as for `dealloc`.
        unsafe { RustAllocator::usable_size(ptr) }
    }
}

/// Hands the memory this thread freed back to the operating system now. The global allocator
/// of `para` is mimalloc, which otherwise keeps a thread's freed pages until that thread
/// allocates again (a blocking pool's idle thread does not) or exits.
pub(crate) fn give_back() {
    mimalloc::collect();
}

#[allow(unsafe_code)]
mod mimalloc {
    // Links the mimalloc library, which defines `mi_collect` (`libmimalloc_sys` declares it
    // only with its `extended` feature).
    use libmimalloc_sys as _;

    unsafe extern "C" {
        /// `void mi_collect(bool force)`: frees what the calling thread's heap no longer uses
        /// and returns it to the OS. Harmless when mimalloc is not the global allocator (it
        /// then has nothing to collect).
        safe fn mi_collect(force: bool);
    }

    pub(super) fn collect() {
        mi_collect(true);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier, mpsc};

    use super::*;

    fn budget(limit: usize, wait: Duration) -> &'static Budget {
        let budget: &'static Budget = Box::leak(Box::new(Budget::new()));
        budget.configure(SandboxMemoryConfig { budget_bytes: limit, wait, retain_bytes: 8 << 20 });
        budget
    }

    #[test]
    fn footprints_are_what_rust_allocator_takes() {
        let meter = Meter::new(budget(1 << 20, Duration::ZERO), 1 << 20);
        let mut allocator = Metered(meter.clone());
        for size in [0, 1, 7, 8, 9, 100, 4096, 100_001] {
            let ptr = allocator.alloc(size);
            assert!(!ptr.is_null());
            #[allow(unsafe_code)]
            let usable = unsafe { <Metered as Allocator>::usable_size(ptr) };
            assert_eq!(meter.held(), usable + 8, "{size}");
            #[allow(unsafe_code)]
            unsafe {
                allocator.dealloc(ptr)
            };
            assert_eq!(meter.held(), 0);
        }
        let ptr = allocator.calloc(3, 10);
        assert_eq!(meter.held(), footprint(30));
        #[allow(unsafe_code)]
        let ptr = unsafe { allocator.realloc(ptr, 5000) };
        assert_eq!(meter.held(), footprint(5000));
        #[allow(unsafe_code)]
        let ptr = unsafe { allocator.realloc(ptr, 10) };
        assert_eq!(meter.held(), footprint(10));
        #[allow(unsafe_code)]
        unsafe {
            allocator.dealloc(ptr)
        };
        assert_eq!((meter.held(), meter.budget.used()), (0, 0));
    }

    #[test]
    fn the_runtime_limit_and_the_budget_refuse_and_say_which() {
        let budget = budget(100_000, Duration::from_secs(60));
        let _running = budget.enter();
        let meter = Meter::new(budget, 50_000);
        let mut allocator = Metered(meter.clone());
        assert!(allocator.alloc(60_000).is_null());
        assert!(meter.refused() && !meter.over_budget());
        assert_eq!(budget.used(), 0);
        meter.start_call(1 << 30);
        assert!(!meter.refused());
        // Alone, a call past the budget does not wait (nothing else would free memory).
        assert!(allocator.alloc(200_000).is_null());
        assert!(meter.over_budget());
        assert_eq!(budget.figures().refusals, 1);
        assert_eq!(budget.figures().waits, 0);
        assert_eq!(budget.figures().peak_bytes, 0);
    }

    #[test]
    fn past_the_budget_an_allocation_waits_for_another_call_to_free_memory() {
        let budget = budget(100_000, Duration::from_secs(3600));
        let (holding, held) = mpsc::channel();
        let (free, freed) = mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            let _running = budget.enter();
            let meter = Meter::new(budget, usize::MAX);
            let mut allocator = Metered(meter);
            let ptr = allocator.alloc(80_000);
            holding.send(()).unwrap();
            freed.recv().unwrap();
            #[allow(unsafe_code)]
            unsafe {
                allocator.dealloc(ptr)
            };
        });
        held.recv().unwrap();
        let _running = budget.enter();
        let waiter = std::thread::spawn(move || {
            let meter = Meter::new(budget, usize::MAX);
            let mut allocator = Metered(meter.clone());
            let ptr = allocator.alloc(50_000);
            let got = !ptr.is_null();
            #[allow(unsafe_code)]
            unsafe {
                allocator.dealloc(ptr)
            };
            (got, meter.over_budget())
        });
        // Once the second allocation waits, the first call frees its memory.
        while budget.lock().waiting == 0 && !waiter.is_finished() {
            std::thread::yield_now();
        }
        free.send(()).unwrap();
        assert_eq!(waiter.join().unwrap(), (true, false));
        other.join().unwrap();
        let figures = budget.figures();
        assert_eq!((figures.waits, figures.refusals, figures.in_use_bytes), (1, 0, 0));
        assert!(figures.peak_bytes <= 100_000, "{figures:?}");
    }

    #[test]
    fn calls_that_all_wait_for_each_other_do_not_hang() {
        let budget = budget(100_000, Duration::from_secs(3600));
        // Two calls hold 40,000 bytes each and each wants 40,000 more: the second one to wait
        // finds every running call waiting and is refused; its memory freed, the other goes on.
        let (holding, held) = mpsc::channel();
        let go = Arc::new(Barrier::new(2));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (holding, go) = (holding.clone(), go.clone());
                std::thread::spawn(move || {
                    let running = budget.enter();
                    let meter = Meter::new(budget, usize::MAX);
                    let mut allocator = Metered(meter.clone());
                    let first = allocator.alloc(40_000);
                    go.wait();
                    let second = allocator.alloc(40_000);
                    let got = !second.is_null();
                    #[allow(unsafe_code)]
                    unsafe {
                        if got {
                            allocator.dealloc(second);
                        }
                        allocator.dealloc(first);
                    }
                    drop(running);
                    holding.send(got).unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut outcomes: Vec<bool> = held.try_iter().collect();
        outcomes.sort();
        // One was refused; the other got its memory (at once, or after waiting).
        assert_eq!(outcomes, [false, true]);
        let figures = budget.figures();
        assert_eq!((figures.refusals, figures.in_use_bytes), (1, 0));
        assert!(figures.peak_bytes <= 100_000, "{figures:?}");
    }
}
