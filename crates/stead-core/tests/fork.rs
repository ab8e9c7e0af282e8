//! A forked child never signs with its parent's pending ES256 nonces
//! (`es256::nonces`): if it did, the child's signature and the parent's
//! next one would share r, and two signatures with one nonce give the key
//! away. In its own test binary, with one test, so that no other thread
//! holds a lock of AWS-LC's when the process forks.

use stead_core::{SigningAlg, SigningKey};

#[test]
fn a_forked_child_and_its_parent_never_share_a_nonce() {
    let key = SigningKey::from_pkcs8(SigningAlg::ES256, &SigningAlg::ES256.generate_pkcs8().unwrap()).unwrap();
    // The parent's batch exists and has nonces pending.
    let _ = key.sign(b"before the fork");
    let mut pipe = [0i32; 2];
    // SAFETY: the child signs, writes the signature to the pipe and leaves
    // with _exit, running no destructors and no test harness code.
    let child_signature = unsafe {
        assert_eq!(libc::pipe(pipe.as_mut_ptr()), 0);
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let signature = key.sign(b"in the child");
            libc::write(pipe[1], signature.as_ptr().cast(), signature.len());
            libc::_exit(0);
        }
        let mut signature = [0u8; 64];
        let read = libc::read(pipe[0], signature.as_mut_ptr().cast(), signature.len());
        libc::waitpid(pid, std::ptr::null_mut(), 0);
        libc::close(pipe[0]);
        libc::close(pipe[1]);
        assert_eq!(read, 64, "the child did not sign");
        signature
    };
    // Without the fork check, the child would have taken the very nonce
    // the parent takes next.
    let parent_signature = key.sign(b"in the parent");
    assert_ne!(child_signature[..32], parent_signature[..32], "the child used a nonce of its parent's batch");
}
