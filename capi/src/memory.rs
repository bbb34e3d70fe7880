//! Strings and string lists handed to C, allocated with `malloc` so that `vcp_free()`
//! (or plain `free()`) releases them.

use std::ffi::{c_char, c_void};
use std::ptr;

use virtcheckpoint::{Error, ErrorCode, ErrorDomain, Result};

fn no_memory() -> Error {
    Error::new(ErrorCode::NoMemory, ErrorDomain::None, "allocation failed")
}

/// A `malloc`ed NUL-terminated copy of `s`. An interior NUL is an internal error.
pub(crate) fn c_string(s: &str) -> Result<*mut c_char> {
    if s.as_bytes().contains(&0) {
        return Err(Error::internal("string with an embedded NUL byte"));
    }
    // SAFETY: malloc of len+1 bytes; we write exactly that many.
    unsafe {
        let p = libc::malloc(s.len() + 1).cast::<u8>();
        if p.is_null() {
            return Err(no_memory());
        }
        ptr::copy_nonoverlapping(s.as_ptr(), p, s.len());
        *p.add(s.len()) = 0;
        Ok(p.cast())
    }
}

/// A `malloc`ed array of `n` `T`s, uninitialised (NULL for none).
pub(crate) fn c_array<T>(n: usize) -> Result<*mut T> {
    if n == 0 {
        return Ok(ptr::null_mut());
    }
    // SAFETY: calloc checks n * size for overflow.
    let p = unsafe { libc::calloc(n, size_of::<T>()) }.cast::<T>();
    if p.is_null() {
        return Err(no_memory());
    }
    Ok(p)
}

/// A `malloc`ed NULL-terminated array of `malloc`ed strings; on failure nothing leaks.
pub(crate) fn c_string_list<S: AsRef<str>>(items: &[S]) -> Result<*mut *mut c_char> {
    // SAFETY: array of len+1 pointers, each slot written before use; freed on failure.
    unsafe {
        let arr = libc::calloc(items.len() + 1, size_of::<*mut c_char>()).cast::<*mut c_char>();
        if arr.is_null() {
            return Err(no_memory());
        }
        for (i, s) in items.iter().enumerate() {
            match c_string(s.as_ref()) {
                Ok(p) => *arr.add(i) = p,
                Err(e) => {
                    vcp_string_list_free(arr);
                    return Err(e);
                }
            }
        }
        Ok(arr)
    }
}

/// Frees a string or buffer returned by this library. NULL is accepted.
///
/// # Safety
/// `ptr` is NULL or was returned by this library and not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_free(ptr: *mut c_void) {
    // SAFETY: everything we hand out is malloc'ed.
    unsafe { libc::free(ptr) }
}

/// Frees a NULL-terminated string array returned by this library, and its strings.
/// NULL is accepted.
///
/// # Safety
/// `list` is NULL or was returned by this library and not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_string_list_free(list: *mut *mut c_char) {
    if list.is_null() {
        return;
    }
    // SAFETY: the list is NULL-terminated and each entry is malloc'ed.
    unsafe {
        let mut i = 0;
        while !(*list.add(i)).is_null() {
            libc::free((*list.add(i)).cast());
            i += 1;
        }
        libc::free(list.cast());
    }
}
