//! The PyO3 layer shared by every generated extension module: it only converts arguments
//! (numpy arrays in, numpy arrays and dicts out), releases the GIL around the engine,
//! lets several Python threads share one object ([`Shared`]), and maps each [`Error`]
//! variant to one exception class of `serverless_ray.errors`.

use crate::engine::{Engine, InputValue};
use crate::error::{shape_str, Error};
use crate::Panel;
use ndarray::{ArrayView2, Axis, Ix2, ShapeBuilder};
use numpy::{
    PyArray1, PyArray2, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyLookupError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyType};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;

pub use numpy;
pub use pyo3;

/// The Python exception class for an error: `serverless_ray.errors.<name>`, or the
/// builtin base class if `serverless_ray` cannot be imported.
pub fn to_pyerr(py: Python<'_>, err: Error) -> PyErr {
    let (class, fallback): (&str, fn(String) -> PyErr) = match &err {
        Error::UnknownNode { .. } | Error::UnknownInput { .. } => {
            ("UnknownNameError", PyLookupError::new_err)
        }
        Error::MissingInput { .. } | Error::MissingRows { .. } => {
            ("MissingInputError", PyLookupError::new_err)
        }
        Error::Shape { .. } | Error::NotAppendable { .. } => ("ShapeError", PyValueError::new_err),
        Error::DType { .. } => ("DTypeError", PyTypeError::new_err),
        Error::Compute { .. } => ("ComputeError", PyRuntimeError::new_err),
    };
    let message = err.to_string();
    let class = py
        .import("serverless_ray.errors")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
    match class {
        Ok(class) => PyErr::from_type(class, message),
        Err(_) => fallback(message),
    }
}

/// The state of a compiled DAG object (its engine, or the struct around it), shared by
/// the Python threads that call it: a call takes it for its whole length and gives it
/// back when done, and calls from other threads queue meanwhile. The pyclass holding it
/// is `frozen`, so PyO3 never refuses a call with "Already borrowed".
///
/// Calls compute with the GIL released, so the GIL and this lock are taken in either
/// order; a thread never waits for the lock while it holds the GIL ([`Shared::lock`]
/// releases it to wait), so two threads cannot deadlock.
pub struct Shared<T> {
    state: Mutex<Slot<T>>,
    returned: Condvar,
}

struct Slot<T> {
    /// `None` while a call holds the value.
    value: Option<T>,
    /// The thread holding it, to refuse a call that would wait for itself.
    holder: Option<ThreadId>,
}

impl<T: Send> Shared<T> {
    pub fn new(value: T) -> Self {
        Shared {
            state: Mutex::new(Slot {
                value: Some(value),
                holder: None,
            }),
            returned: Condvar::new(),
        }
    }

    /// Takes the value for one call, waiting (with the GIL released) while another
    /// thread's call holds it. A call made again from the thread that holds it (from a
    /// `__del__` or a signal handler run in the middle of a call) is a RuntimeError
    /// rather than a deadlock.
    pub fn lock(&self, py: Python<'_>) -> PyResult<Lease<'_, T>> {
        let me = std::thread::current().id();
        let taken = {
            // Held only for these few instructions, never while waiting for the GIL.
            let mut slot = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if slot.holder == Some(me) {
                return Err(PyRuntimeError::new_err(
                    "this compiled DAG object is already in a call on this thread (a callback \
                     re-entered it); call it again once that call has returned",
                ));
            }
            let taken = slot.value.take();
            if taken.is_some() {
                slot.holder = Some(me);
            }
            taken
        };
        let value = match taken {
            Some(value) => value,
            None => py.detach(|| {
                let slot = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let mut slot = self
                    .returned
                    .wait_while(slot, |s| s.value.is_none())
                    .unwrap_or_else(|e| e.into_inner());
                slot.holder = Some(me);
                slot.value.take().expect("waited for it")
            }),
        };
        Ok(Lease {
            shared: self,
            value: Some(value),
        })
    }
}

/// The value of a [`Shared`] while one call holds it; given back when dropped (also
/// when the call unwinds).
pub struct Lease<'a, T> {
    shared: &'a Shared<T>,
    value: Option<T>,
}

impl<T> Deref for Lease<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value.as_ref().expect("held until dropped")
    }
}

impl<T> DerefMut for Lease<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value.as_mut().expect("held until dropped")
    }
}

impl<T> Drop for Lease<'_, T> {
    fn drop(&mut self) {
        let mut slot = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        slot.value = self.value.take();
        slot.holder = None;
        drop(slot);
        self.shared.returned.notify_one();
    }
}

/// Converts one keyword argument into an engine input: a 1-D (T) or 2-D (T, N) float64
/// numpy array, copied once (keeping C or Fortran order) so the engine owns a snapshot.
fn extract_input(name: &str, obj: &Bound<'_, PyAny>) -> Result<InputValue, Error> {
    let Ok(array) = obj.cast::<PyArrayDyn<f64>>() else {
        let actual = match obj.cast::<PyUntypedArray>() {
            Ok(a) => format!("an array of dtype {}", a.dtype()),
            Err(_) => format!(
                "a {}",
                obj.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| "?".into())
            ),
        };
        return Err(Error::DType {
            input: name.to_string(),
            actual,
        });
    };
    let shape_error = |actual: &[usize]| Error::Shape {
        input: name.to_string(),
        expected: "a 1-D (T,) or 2-D (T, N) array".to_string(),
        actual: shape_str(actual),
    };
    let readonly = array.try_readonly().map_err(|e| Error::DType {
        input: name.to_string(),
        actual: format!("an array that cannot be read ({e})"),
    })?;
    let view = readonly.as_array();
    let given_shape = view.shape().to_vec();
    let view = match view.ndim() {
        1 => view.insert_axis(Axis(1)).into_dimensionality::<Ix2>(),
        2 => view.into_dimensionality::<Ix2>(),
        _ => return Err(shape_error(&given_shape)),
    }
    .map_err(|_| shape_error(&given_shape))?;
    Ok(InputValue {
        panel: snapshot(view),
        given_shape,
    })
}

/// An owned copy in the same memory order (C or Fortran), into a pooled buffer.
fn snapshot(view: ArrayView2<'_, f64>) -> Panel {
    let Some(values) = view.as_slice_memory_order() else {
        return view.to_owned(); // strided: a gathering copy, in C order
    };
    let mut buffer = crate::pool::take(values.len());
    buffer.extend_from_slice(values);
    let shaped = if view.is_standard_layout() {
        Panel::from_shape_vec(view.dim(), buffer)
    } else {
        Panel::from_shape_vec(view.dim().f(), buffer)
    };
    shaped.expect("as many values as the view")
}

/// `keep=ROWS` of a constructor: a bounded stream (see [`Engine::set_keep`]). ROWS is an
/// int >= 1 (not a bool), or None to keep every row.
pub fn set_keep(engine: &mut Engine, keep: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    let Some(keep) = keep.filter(|k| !k.is_none()) else {
        engine.set_keep(None);
        return Ok(());
    };
    let rows = match keep.cast::<PyInt>() {
        Ok(int) if !keep.is_instance_of::<PyBool>() => {
            int.extract::<i64>().ok().filter(|&r| r >= 1)
        }
        _ => None,
    };
    let Some(rows) = rows else {
        return Err(PyValueError::new_err(format!(
            "keep must be an int >= 1 (the rows kept of each node), or None to keep every \
             row; got {}",
            keep.repr()?
        )));
    };
    if let Some(reason) = engine.spec().append_blocker() {
        return Err(PyValueError::new_err(format!(
            "keep= makes a stream of appended rows, and this DAG cannot append: {reason}"
        )));
    }
    engine.set_keep(Some(usize::try_from(rows).unwrap_or(usize::MAX)));
    Ok(())
}

/// `last=k` of `compute`: an int >= 0 (TypeError for another type, a bool included;
/// ValueError below 0), or None for whole values.
pub fn last_rows_arg(last: Option<&Bound<'_, PyAny>>) -> PyResult<Option<usize>> {
    let Some(last) = last.filter(|k| !k.is_none()) else {
        return Ok(None);
    };
    let int = match last.cast::<PyInt>() {
        Ok(int) if !last.is_instance_of::<PyBool>() => int,
        _ => {
            return Err(PyTypeError::new_err(format!(
                "last must be an int (the number of last rows to return), got {}",
                last.repr()?
            )))
        }
    };
    match int.extract::<i64>() {
        Ok(k) if k < 0 => Err(PyValueError::new_err(format!(
            "last must be >= 0 (the number of last rows to return), got {k}"
        ))),
        Ok(k) => Ok(Some(usize::try_from(k).unwrap_or(usize::MAX))),
        Err(_) => Ok(Some(usize::MAX)), // beyond i64: every row
    }
}

/// Sets the inputs given as keyword arguments, all or none.
pub fn set_inputs(
    py: Python<'_>,
    engine: &mut Engine,
    inputs: Option<&Bound<'_, PyDict>>,
) -> PyResult<()> {
    let Some(inputs) = inputs else { return Ok(()) };
    let spec = engine.spec();
    let mut batch = Vec::with_capacity(inputs.len());
    for (key, value) in inputs.iter() {
        let name: String = key.extract()?;
        let index = spec.input_index(&name).map_err(|e| to_pyerr(py, e))?;
        batch.push((
            index,
            extract_input(&name, &value).map_err(|e| to_pyerr(py, e))?,
        ));
    }
    py.detach(|| engine.set_inputs(batch))
        .map_err(|e| to_pyerr(py, e))
}

/// Keeps a cached node value alive while numpy arrays view it.
#[pyclass(frozen, module = "serverless_ray", name = "CachedValue")]
struct CachedValue {
    value: Arc<Panel>,
}

impl Drop for CachedValue {
    /// The last view of a value its engine no longer holds gives its buffer to the pool.
    fn drop(&mut self) {
        let value = std::mem::replace(&mut self.value, Arc::new(Panel::zeros((0, 0))));
        crate::pool::recycle(value);
    }
}

/// A read-only numpy view of a node's value as users see it (its last
/// [`Engine::visible_rows`] rows): no copy, and the cache cannot be corrupted by writing
/// to a result (`.copy()` it to modify). In the shape [`Engine::output_shape`] gives:
/// 1-D or 2-D.
fn to_numpy(
    py: Python<'_>,
    engine: &Engine,
    node: usize,
    value: &Arc<Panel>,
) -> PyResult<Py<PyAny>> {
    let rows = engine.visible_rows(node, value);
    let shape = engine.output_shape(value, rows);
    let owner = Bound::new(
        py,
        CachedValue {
            value: value.clone(),
        },
    )?
    .into_any();
    let visible = value.slice(ndarray::s![value.nrows() - rows.., ..]);
    // SAFETY: `owner` holds an `Arc` of the panel, so the memory viewed outlives the array.
    let array = if shape.len() == 1 {
        let column = visible.index_axis(Axis(1), 0);
        unsafe { PyArray1::borrow_from_array(&column, owner) }.into_any()
    } else {
        unsafe { PyArray2::borrow_from_array(&visible, owner) }.into_any()
    };
    array.getattr("flags")?.setattr("writeable", false)?;
    Ok(array.unbind())
}

/// A new numpy array holding the last `last` rows of a node's value (at most the rows
/// users see of it): a copy of those rows only. A node whose rows are not time comes
/// whole.
fn last_rows(
    py: Python<'_>,
    engine: &Engine,
    node: usize,
    value: &Panel,
    last: usize,
) -> Py<PyAny> {
    let visible = engine.visible_rows(node, value);
    let rows = if engine.spec().nodes[node].timed {
        visible.min(last)
    } else {
        visible
    };
    let tail = value.slice(ndarray::s![value.nrows() - rows.., ..]);
    if engine.output_shape(value, rows).len() == 1 {
        PyArray1::from_array(py, &tail.index_axis(Axis(1), 0))
            .into_any()
            .unbind()
    } else {
        PyArray2::from_array(py, &tail).into_any().unbind()
    }
}

/// Computes nodes (by index) with the GIL released and returns them as numpy arrays:
/// whole (as views), or their last `last` rows (as copies).
pub fn compute(
    py: Python<'_>,
    engine: &mut Engine,
    nodes: &[usize],
    last: Option<usize>,
) -> PyResult<Vec<Py<PyAny>>> {
    let values = py
        .detach(|| engine.compute(nodes))
        .map_err(|e| to_pyerr(py, e))?;
    nodes
        .iter()
        .zip(&values)
        .map(|(&node, v)| match last {
            Some(k) => Ok(last_rows(py, engine, node, v, k)),
            None => to_numpy(py, engine, node, v),
        })
        .collect()
}

/// `compute(["f1", "f3"], last=k)`: a dict name -> array, every name checked before any
/// work.
pub fn compute_named<'py>(
    py: Python<'py>,
    engine: &mut Engine,
    names: Vec<String>,
    last: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let spec = engine.spec();
    let indices = names
        .iter()
        .map(|n| spec.node_index(n))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| to_pyerr(py, e))?;
    let values = compute(py, engine, &indices, last)?;
    let out = PyDict::new(py);
    for (name, value) in names.iter().zip(values) {
        out.set_item(name, value)?;
    }
    Ok(out)
}

/// One new-rows argument of `append`: `(k, N)` or one row `(N,)` for an input held 2-D,
/// `(k,)` or one number for an input held 1-D; an input not set yet takes the rows as
/// given (1-D or 2-D).
fn extract_rows(
    name: &str,
    obj: &Bound<'_, PyAny>,
    held: Option<&[usize]>,
) -> Result<InputValue, Error> {
    // A Python float (numpy's float64 is one): one row of an input held 1-D.
    if let Ok(v) = obj.cast::<PyFloat>() {
        if let Some([_, n]) = held {
            return Err(Error::Shape {
                input: name.to_string(),
                expected: format!("(k, {n}) rows or one row of shape ({n},), not one number"),
                actual: "a number".to_string(),
            });
        }
        return Ok(InputValue {
            panel: Panel::from_elem((1, 1), v.value()),
            given_shape: vec![1],
        });
    }
    let mut rows = extract_input(name, obj).or_else(|err| match err {
        // A 0-d array: one number.
        Error::Shape { .. } => match obj.cast::<PyArrayDyn<f64>>() {
            Ok(a) if a.ndim() == 0 => Ok(InputValue {
                panel: Panel::from_elem(
                    (1, 1),
                    a.readonly()
                        .as_array()
                        .iter()
                        .copied()
                        .next()
                        .unwrap_or(f64::NAN),
                ),
                given_shape: vec![],
            }),
            _ => Err(err),
        },
        err => Err(err),
    })?;
    let expected = match held {
        Some([_]) => "(k,) rows or one number, as the input was given 1-D",
        _ => "(k, N) rows or one row of shape (N,)",
    };
    let shape_error = |given: &[usize]| Error::Shape {
        input: name.to_string(),
        expected: expected.to_string(),
        actual: shape_str(given),
    };
    match (held.map(|h| h.len()), rows.given_shape.len()) {
        // One number, for an input held 1-D or not set yet.
        (Some(1) | None, 0) => rows.given_shape = vec![1],
        // (k,) rows of a 1-D input, or (k, N) rows of a 2-D one.
        (Some(1) | None, 1) | (Some(2) | None, 2) => {}
        // One row (N,) of a 2-D input.
        (Some(2), 1) => {
            let n = rows.panel.nrows();
            rows.panel = rows
                .panel
                .into_shape_with_order((1, n))
                .map_err(|_| shape_error(&rows.given_shape))?;
        }
        _ => return Err(shape_error(&rows.given_shape)),
    }
    Ok(rows)
}

/// `append(**rows)`: new rows of every time-indexed input, all or nothing.
pub fn append(
    py: Python<'_>,
    engine: &mut Engine,
    rows: Option<&Bound<'_, PyDict>>,
) -> PyResult<()> {
    let spec = engine.spec();
    let held = engine.input_shapes();
    let mut batch = Vec::new();
    for (key, value) in rows.into_iter().flat_map(|d| d.iter()) {
        let name: String = key.extract()?;
        let index = spec.input_index(&name).map_err(|e| to_pyerr(py, e))?;
        let given = extract_rows(&name, &value, held[index]).map_err(|e| to_pyerr(py, e))?;
        batch.push((index, given));
    }
    py.detach(|| engine.append(batch))
        .map_err(|e| to_pyerr(py, e))
}

/// `stats()`: {node: {"computes": n, "cutoffs": n, "seconds": s, "rows": n}}.
pub fn stats<'py>(py: Python<'py>, engine: &Engine) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    for (node, st) in engine.spec().nodes.iter().zip(engine.stats()) {
        let d = PyDict::new(py);
        d.set_item("computes", st.computes)?;
        d.set_item("cutoffs", st.cutoffs)?;
        d.set_item("seconds", st.seconds)?;
        d.set_item("rows", st.rows)?;
        out.set_item(node.name, d)?;
    }
    Ok(out)
}

/// The error for a name that `cal` does not know.
pub fn unknown_node(py: Python<'_>, engine: &Engine, name: &str) -> PyErr {
    to_pyerr(py, engine.spec().unknown_node(name))
}

/// One node (by index) as a numpy array.
pub fn compute_one(py: Python<'_>, engine: &mut Engine, node: usize) -> PyResult<Py<PyAny>> {
    Ok(compute(py, engine, &[node], None)?.remove(0))
}

/// `<Alpha (compiled): inputs open (100, 5), close (100, 5), high, low; nodes f1, f2>`:
/// the shape of each input that is set.
pub fn repr(engine: &Engine) -> String {
    let spec = engine.spec();
    let inputs: Vec<String> = spec
        .inputs
        .iter()
        .zip(engine.input_shapes())
        .map(|(name, shape)| match shape {
            Some(shape) => format!("{name} {}", shape_str(shape)),
            None => name.to_string(),
        })
        .collect();
    let nodes: Vec<&str> = spec.public_nodes().map(|n| n.name).collect();
    format!(
        "<{} (compiled): inputs {}; nodes {}>",
        spec.name,
        inputs.join(", "),
        nodes.join(", ")
    )
}
