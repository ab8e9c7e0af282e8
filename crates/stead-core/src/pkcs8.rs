//! AWS-LC's PKCS#8 private-key parse, shared by the signers that call
//! AWS-LC directly ([`crate::es256`], [`crate::ed25519`]).

use aws_lc_sys as sys;
use std::ptr::NonNull;

/// A parsed private key, freed (and its memory wiped by AWS-LC) on drop.
pub(crate) struct PrivateKey {
    pub(crate) pkey: NonNull<sys::EVP_PKEY>,
    /// Bytes of the input left after the key: a PKCS#8 document has none.
    pub(crate) trailing: usize,
}

impl PrivateKey {
    /// Parses `der` as a PKCS#8 private key; `None` when AWS-LC cannot.
    pub(crate) fn parse(der: &[u8]) -> Option<PrivateKey> {
        // SAFETY: the CBS borrows `der` only during the parse, which returns
        // an EVP_PKEY that owns its key material.
        unsafe {
            let mut cbs = std::mem::MaybeUninit::<sys::CBS>::uninit();
            sys::CBS_init(cbs.as_mut_ptr(), der.as_ptr(), der.len());
            let mut cbs = cbs.assume_init();
            let pkey = NonNull::new(sys::EVP_parse_private_key(&mut cbs))?;
            Some(PrivateKey { pkey, trailing: cbs.len })
        }
    }
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        // SAFETY: the EVP_PKEY is owned by this value alone.
        unsafe { sys::EVP_PKEY_free(self.pkey.as_ptr()) }
    }
}
