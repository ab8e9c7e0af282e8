//! ECDSA P-256 nonces, precomputed in batches.
//!
//! An ECDSA signature (SEC 1 §4.1.3) is `r = x(kG) mod n` and
//! `s = k⁻¹ (e + r d) mod n` for a fresh secret nonce `k`. Neither `r` nor
//! `k⁻¹` depends on the message or the key, so both can be made ahead of
//! the signature; the signature itself is then two multiplications and an
//! addition mod `n`. Made one at a time, the inversion of `k` (a
//! constant-time exponentiation to `n − 2`) costs about a third of the
//! signature. Made in batches, one inversion serves the whole batch
//! (Montgomery's simultaneous inversion: 3 multiplications per nonce).
//!
//! The parts, all constant-time in the secret values:
//! - `k`: uniform in `[1, n − 1]` by rejection sampling (FIPS 186-5
//!   §A.3.2) from AWS-LC's DRBG;
//! - `kG`: AWS-LC's base-point multiplication and affine conversion
//!   (`EC_POINT_mul` with only the generator takes its constant-time path);
//! - arithmetic mod `n`: the `p256` crate's `Scalar`.
//!
//! Each thread keeps its own batch, so taking a nonce takes no lock and no
//! nonce can be handed out twice: a nonce is copied out of its slot and the
//! slot is zeroed before anything else can read it. A batch is at most
//! [`BATCH`] nonces; the memory they occupy is zeroed when they are used
//! and when the thread ends.
//!
//! The nonces are random, as FIPS 186-5 §6.4.1 has them, not also hashed
//! from the key and the message as AWS-LC's own `ECDSA_do_sign` does: a
//! copy of a process's memory that goes on signing beside the original
//! (a fork, or a VM cloned from a snapshot) would use the same pending
//! nonces, and two signatures with one nonce give the key away. A batch
//! made before a fork is never used: the child drops it (a
//! `pthread_atfork` handler counts forks; a raw `clone` system call made
//! without glibc would go unseen). A VM snapshot cannot be seen from
//! inside; do not
//! resume two clones of a snapshot taken while stead was running (stead
//! itself starts no child processes).

use aws_lc_sys as sys;
use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::subtle::ConstantTimeEq;
use p256::elliptic_curve::zeroize::Zeroize;
use p256::elliptic_curve::{Field, PrimeField};
use p256::{FieldBytes, Scalar, U256};
use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

/// Nonces made at once: one inversion each 32 signatures (~1/3 µs a
/// signature) and ~0.3 ms of work when a thread's batch runs out.
pub(super) const BATCH: usize = 32;

/// What a signature needs of its nonce `k`: `r = x(kG) mod n` and `k⁻¹ mod n`.
pub(super) struct Nonce {
    pub(super) r: Scalar,
    pub(super) k_inv: Scalar,
}

impl Drop for Nonce {
    fn drop(&mut self) {
        // `k⁻¹` (with `r`, which is public) gives the key away from one
        // signature: it never outlives its use.
        self.k_inv.zeroize();
    }
}

/// A thread's nonces and the fork generation they were made in.
struct Pool {
    forks: u64,
    nonces: Vec<Nonce>,
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { forks: 0, nonces: Vec::new() }) };
}

/// How many times this process's ancestry forked since the first key was
/// parsed: `pthread_atfork` counts each fork in the child. (A process
/// id would do too, but glibc makes `getpid` a system call each time.)
static FORKS: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_fork_in_child() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// Starts counting forks; called before a signer can take a nonce (when
/// its key is parsed), so that no fork goes uncounted.
pub(super) fn count_forks() {
    static REGISTER: Once = Once::new();
    // SAFETY: the handler only increments an atomic, which is
    // async-signal-safe as a fork child handler must be.
    REGISTER.call_once(|| unsafe {
        libc::pthread_atfork(None, None, Some(count_fork_in_child));
    });
}

/// A nonce never handed out before, from this thread's batch (made anew
/// when it is empty, or was made before a fork).
pub(super) fn take() -> Nonce {
    POOL.with_borrow_mut(|Pool { forks, nonces: pool }| {
        let now = FORKS.load(Ordering::Relaxed);
        if pool.is_empty() || *forks != now {
            // The old batch (a forked parent's) is zeroed as it is dropped.
            *pool = precompute(BATCH);
            *forks = now;
        }
        let last = pool.len() - 1;
        let nonce = Nonce { r: pool[last].r, k_inv: pool[last].k_inv };
        // Dropping the slot zeroes it.
        pool.truncate(last);
        nonce
    })
}

/// `count` fresh nonces.
fn precompute(count: usize) -> Vec<Nonce> {
    let mut ks: Vec<Scalar> = (0..count).map(|_| random_nonzero_scalar()).collect();
    let batch = from_k(&ks);
    ks.zeroize();
    // SEC 1 §4.1.3 step 1.3: r = 0 (probability ~2⁻²⁵⁶) leaves fewer than
    // `count`; the next batch comes sooner.
    if batch.is_empty() {
        return precompute(count);
    }
    batch
}

/// The nonces of the given non-zero `ks`, but for any whose r is 0; the
/// caller zeroes its `ks`.
pub(super) fn from_k(ks: &[Scalar]) -> Vec<Nonce> {
    let base = BaseMultiplier::new();
    // The nonces hold `k` in `k_inv` until the inversion below. Allocated
    // once at full size: a reallocation would leave copies of k behind.
    let mut batch = Vec::with_capacity(ks.len());
    let mut kept = Vec::with_capacity(ks.len());
    for k in ks {
        let nonce = Nonce { r: base.x_mod_n(k), k_inv: *k };
        if !bool::from(nonce.r.is_zero()) {
            batch.push(nonce);
            kept.push(*k);
        }
    }
    invert_in_place(&mut batch);
    // A fault in the arithmetic would spoil every signature of the batch:
    // check each inverse (one multiplication, a fraction of a percent).
    for (nonce, k) in batch.iter().zip(&kept) {
        assert!(bool::from((nonce.k_inv * k).ct_eq(&Scalar::ONE)), "ECDSA nonce inversion failed");
    }
    kept.zeroize();
    batch
}

/// Replaces each nonce's `k` by `k⁻¹ mod n` with one inversion
/// (Montgomery's trick): with `p_i = k_0 ⋯ k_(i−1)`, `k_i⁻¹ = p_i ·
/// (k_0 ⋯ k_i)⁻¹`, and the running inverse steps down by one `k` each.
fn invert_in_place(batch: &mut [Nonce]) {
    let mut prefixes = Vec::with_capacity(batch.len());
    let mut product = Scalar::ONE;
    for nonce in batch.iter() {
        prefixes.push(product);
        product *= nonce.k_inv;
    }
    // Every k is non-zero and n is prime, so the product has an inverse;
    // `invert` is constant-time (Fermat, a public exponent).
    let mut inverse = product.invert().expect("a product of non-zero scalars mod a prime is non-zero");
    for (nonce, prefix) in batch.iter_mut().zip(&prefixes).rev() {
        let mut k = nonce.k_inv;
        nonce.k_inv = inverse * prefix;
        inverse *= k;
        k.zeroize();
    }
    prefixes.zeroize();
    product.zeroize();
    inverse.zeroize();
}

/// A uniform scalar in `[1, n − 1]`: 32 random bytes, drawn again while
/// they are `≥ n` or zero (FIPS 186-5 §A.3.2; a redraw is needed once in
/// ~2³² draws). Which draws were rejected says nothing of the one kept.
fn random_nonzero_scalar() -> Scalar {
    loop {
        let mut bytes = FieldBytes::default();
        aws_lc_rs::rand::fill(&mut bytes).expect("the random number generator failed");
        let k = Option::<Scalar>::from(Scalar::from_repr(bytes));
        bytes.zeroize();
        if let Some(k) = k.filter(|k| !bool::from(k.is_zero())) {
            return k;
        }
    }
}

/// AWS-LC's objects for computing `x(kG)`, allocated once per batch.
struct BaseMultiplier {
    group: *const sys::EC_GROUP,
    point: NonNull<sys::EC_POINT>,
    k: NonNull<sys::BIGNUM>,
    x: NonNull<sys::BIGNUM>,
    ctx: NonNull<sys::BN_CTX>,
}

impl BaseMultiplier {
    fn new() -> BaseMultiplier {
        const ALLOC: &str = "AWS-LC could not allocate";
        // SAFETY: EC_group_p256 returns AWS-LC's static P-256 group; the
        // allocations are checked for null and owned by the multiplier.
        unsafe {
            let group = sys::EC_group_p256();
            BaseMultiplier {
                group,
                point: NonNull::new(sys::EC_POINT_new(group)).expect(ALLOC),
                k: NonNull::new(sys::BN_new()).expect(ALLOC),
                x: NonNull::new(sys::BN_new()).expect(ALLOC),
                ctx: NonNull::new(sys::BN_CTX_new()).expect(ALLOC),
            }
        }
    }

    /// `x(kG) mod n`, the `r` of a signature with nonce `k`.
    fn x_mod_n(&self, k: &Scalar) -> Scalar {
        let mut k_bytes = k.to_repr();
        let mut x_bytes = FieldBytes::default();
        // SAFETY: every pointer is owned by `self` and valid for its life;
        // the byte buffers are 32 bytes long, as passed.
        let ok = unsafe {
            let loaded = !sys::BN_bin2bn(k_bytes.as_ptr(), k_bytes.len(), self.k.as_ptr()).is_null();
            k_bytes.zeroize();
            // With only the generator's scalar given, EC_POINT_mul takes
            // the constant-time base-point path (k < n: no reduction).
            loaded
                && sys::EC_POINT_mul(
                    self.group,
                    self.point.as_ptr(),
                    self.k.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                    self.ctx.as_ptr(),
                ) == 1
                && sys::EC_POINT_get_affine_coordinates_GFp(
                    self.group,
                    self.point.as_ptr(),
                    self.x.as_ptr(),
                    std::ptr::null_mut(),
                    self.ctx.as_ptr(),
                ) == 1
                && sys::BN_bn2bin_padded(x_bytes.as_mut_ptr(), x_bytes.len(), self.x.as_ptr()) == 1
        };
        assert!(ok, "P-256 base-point multiplication failed");
        // x < p, and p < 2n: one conditional subtraction reduces it.
        <Scalar as Reduce<U256>>::reduce_bytes(&x_bytes)
    }
}

impl Drop for BaseMultiplier {
    fn drop(&mut self) {
        // SAFETY: the multiplier owns these objects; the `clear` variants
        // zero the last nonce and its point before freeing them.
        unsafe {
            sys::BN_clear_free(self.k.as_ptr());
            sys::BN_free(self.x.as_ptr());
            sys::EC_POINT_clear_free(self.point.as_ptr());
            sys::BN_CTX_free(self.ctx.as_ptr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn each_inverse_times_its_nonce_is_one() {
        let ks: Vec<Scalar> = (0..BATCH + 3).map(|_| random_nonzero_scalar()).collect();
        let batch = from_k(&ks);
        assert_eq!(batch.len(), ks.len());
        for (k, nonce) in ks.iter().zip(&batch) {
            assert_eq!(*k * nonce.k_inv, Scalar::ONE);
            assert_eq!(nonce.k_inv, k.invert().unwrap());
        }
        // A batch of one is its own inversion.
        assert_eq!(from_k(&ks[..1])[0].k_inv * ks[0], Scalar::ONE);
    }

    #[test]
    fn r_is_the_x_coordinate_of_k_times_the_generator() {
        // k = 1: r is the generator's x (SEC 2 §2.4.2), which is below n.
        let gx = "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296";
        let r = BaseMultiplier::new().x_mod_n(&Scalar::ONE);
        let hex: String = r.to_repr().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, gx);
    }

    #[test]
    fn a_batch_made_before_a_fork_is_never_used() {
        let first = take();
        let left = || {
            POOL.with_borrow(|pool| {
                (pool.nonces.len(), pool.nonces.iter().map(|n| n.r.to_repr()).collect::<HashSet<_>>())
            })
        };
        let (count, before) = left();
        assert!(count < BATCH);
        // What the fork handler does in a child.
        count_fork_in_child();
        let second = take();
        let (count, after) = left();
        assert_eq!(count, BATCH - 1, "a new batch was made");
        assert!(before.is_disjoint(&after) && !before.contains(&second.r.to_repr()));
        assert_ne!(first.r, second.r);
    }

    #[test]
    fn nonces_are_never_handed_out_twice() {
        // Across several batches and threads, every r is new.
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..3 * BATCH + 1).map(|_| take().r.to_repr()).collect::<Vec<_>>()))
            .collect();
        let mut seen = HashSet::new();
        for handle in handles {
            for r in handle.join().unwrap() {
                assert!(seen.insert(r), "a nonce was used twice");
            }
        }
        assert_eq!(seen.len(), 4 * (3 * BATCH + 1));
    }
}
