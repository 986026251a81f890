//! What a node's kernel keeps between two runs, so that after an append it computes only
//! new rows all the way through.
//!
//! Inside a kernel, an op often reads earlier rows of an intermediate value
//! (`delta(ts_sum(close, 100), 100)` reads 100 earlier rows of the sum). After an append,
//! those rows were computed by the previous run; a [`Slot`] keeps the last rows of such an
//! intermediate (as many as its readers read before the kernel's first new row), so the
//! next run computes only its new rows and reads the earlier ones from the slot. Values
//! are row-local (docs/ops.md), so the rows kept are bitwise what a recomputation would
//! give.

use crate::engine::push_rows;
use crate::{Panel, View};
use ndarray::s;
use std::any::Any;

/// The slots of one node's kernel (one per intermediate that is read with a lookback).
#[derive(Default)]
pub struct Cache {
    slots: Vec<Slot>,
    /// Whether the slots hold the rows just before the rows this run computes.
    warm: bool,
}

/// The last rows of one intermediate value of a kernel, and the running state of the op
/// that computes it.
#[derive(Default)]
pub struct Slot {
    value: Panel,
    /// Rows before the kernel's first row that the value's readers read.
    need: usize,
    warm: bool,
    /// Its value was computed whole in this run (not grown by new rows).
    cold: bool,
    state: OpState,
}

/// The running state an op keeps between two runs of its kernel (a window's exact sums,
/// say), so that a run after an append continues from the previous run's last row
/// instead of rebuilding the state from the window. Ops whose value at a row is a
/// function of the window alone (row-local, docs/ops.md) give the same bits either way.
#[derive(Default)]
pub struct OpState {
    warm: bool,
    value: Option<Box<dyn Any + Send + Sync>>,
}

impl OpState {
    /// The state the op kept after the previous run's last row, when this run starts
    /// right after it (the op then computes only the new rows); `None` otherwise.
    pub fn resume<T: 'static>(&mut self) -> Option<&mut T> {
        if !self.warm {
            return None;
        }
        self.value.as_mut()?.downcast_mut()
    }

    /// Keeps the op's state after this run's last row, for the next run.
    pub fn keep<T: Send + Sync + 'static>(&mut self, state: T) {
        self.value = Some(Box::new(state));
    }
}

impl Cache {
    /// Readies the cache for a run: `warm` when the slots hold the rows just before the
    /// first row this run computes (the previous run ended there), else they are refilled.
    pub fn begin(&mut self, warm: bool) {
        self.warm = warm;
    }

    /// The kernel's `K` slots, for one run.
    pub fn open<const K: usize>(&mut self) -> &mut [Slot; K] {
        if self.slots.len() != K {
            self.slots = (0..K).map(|_| Slot::default()).collect();
            self.warm = false;
        }
        for slot in &mut self.slots {
            slot.warm = self.warm;
        }
        (&mut self.slots[..])
            .try_into()
            .expect("K slots made above")
    }

    /// After a run: each slot keeps its last `need` rows (cut once it holds twice as
    /// many, so that keeping them costs O(1) amortized per row).
    pub fn settle(&mut self) {
        for slot in &mut self.slots {
            let t = slot.value.nrows();
            if t > 2 * slot.need.max(1) {
                let tail = slot.value.slice(s![t - slot.need.min(t).., ..]);
                let mut buffer = Vec::with_capacity(2 * tail.len() + tail.ncols());
                buffer.extend(tail.iter().copied());
                let kept = Panel::from_shape_vec(tail.dim(), buffer).expect("the tail's values");
                let old = std::mem::replace(&mut slot.value, kept);
                // A value computed whole (a batch run) goes to the pool, as a kernel's
                // temporaries do, so the next kernels write into mapped memory; the
                // buffers an append's cuts free are not pooled (see `engine::keep_last`):
                // nothing would take them back, and a stream's memory would grow.
                if std::mem::take(&mut slot.cold) {
                    crate::pool::give_panel(old);
                }
            }
        }
    }
}

impl Slot {
    /// The last `rows + need` rows of an intermediate value (fewer at the start of the
    /// series): `compute(r, state)` computes its last `r` rows (or more; the last `r` are
    /// kept). Warm, the slot holds the `need` rows before and only `rows` new rows are
    /// computed, from the op's `state` left by the previous run; cold, all of them are.
    pub fn rows(
        &mut self,
        rows: usize,
        need: usize,
        compute: impl FnOnce(usize, &mut OpState) -> Panel,
    ) -> View<'_> {
        self.need = need;
        self.state.warm = self.warm;
        if self.warm {
            let new = compute(rows, &mut self.state);
            let t = new.nrows();
            push_rows(&mut self.value, new.slice(s![t - rows.min(t).., ..]));
            crate::pool::give_panel(new);
        } else {
            let old = std::mem::replace(&mut self.value, compute(rows + need, &mut self.state));
            crate::pool::give_panel(old);
            self.cold = true;
        }
        let t = self.value.nrows();
        self.value.slice(s![t - (rows + need).min(t).., ..])
    }

    /// The last `rows` rows of a value that no later op reads earlier rows of, computed
    /// by an op that keeps a running state (`compute(rows, state)`, as in [`Slot::rows`]).
    pub fn run(
        &mut self,
        rows: usize,
        compute: impl FnOnce(usize, &mut OpState) -> Panel,
    ) -> Panel {
        self.state.warm = self.warm;
        compute(rows, &mut self.state)
    }
}

#[cfg(test)]
impl OpState {
    /// Marks the state warm (the next call continues from the previous call's last row)
    /// or cold, as a [`Slot`] does before each run (tests of the ops' `_from` kernels).
    pub(crate) fn set_warm(&mut self, warm: bool) {
        self.warm = warm;
    }
}
