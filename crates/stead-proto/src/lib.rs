//! Wire types of stead: what crosses HTTP between clients, stead and
//! resource servers. No I/O lives here.

pub mod error;
pub mod jwks;
pub mod metadata;
pub mod realm;
pub mod token;

pub use error::{ErrorCode, ErrorResponse};
pub use jwks::{Jwk, JwkSet};
pub use metadata::ServerMetadata;
pub use realm::{RealmKind, RealmPath, TenantId};
pub use token::{Actor, Claims, IntrospectionResponse, TokenResponse};
