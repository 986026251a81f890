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

/// The slots of one node's kernel (one per intermediate that is read with a lookback).
#[derive(Default)]
pub struct Cache {
    slots: Vec<Slot>,
    /// Whether the slots hold the rows just before the rows this run computes.
    warm: bool,
}

/// The last rows of one intermediate value of a kernel.
#[derive(Default)]
pub struct Slot {
    value: Panel,
    /// Rows before the kernel's first row that the value's readers read.
    need: usize,
    warm: bool,
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
                // The old buffer is freed, not pooled (see `engine::keep_last`).
                slot.value = Panel::from_shape_vec(tail.dim(), buffer).expect("the tail's values");
            }
        }
    }
}

impl Slot {
    /// The last `rows + need` rows of an intermediate value (fewer at the start of the
    /// series): `compute(r)` computes its last `r` rows (or more; the last `r` are kept).
    /// Warm, the slot holds the `need` rows before and only `rows` new rows are
    /// computed; cold, all of them are.
    pub fn rows(
        &mut self,
        rows: usize,
        need: usize,
        compute: impl FnOnce(usize) -> Panel,
    ) -> View<'_> {
        self.need = need;
        if self.warm {
            let new = compute(rows);
            let t = new.nrows();
            push_rows(&mut self.value, new.slice(s![t - rows.min(t).., ..]));
            crate::pool::give_panel(new);
        } else {
            self.value = compute(rows + need);
        }
        let t = self.value.nrows();
        self.value.slice(s![t - (rows + need).min(t).., ..])
    }
}
