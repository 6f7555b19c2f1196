//! The gRPC contract of the provisioning core (`provisioning.v1`), generated
//! from `proto/` by `build.rs`.

/// Generated messages, clients and servers of `provisioning.v1`.
pub mod pb {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("provisioning.v1");
}

/// The encoded file descriptor set, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("provisioning_descriptor");

/// The `ErrorInfo.domain` of every error the core returns.
pub const ERROR_DOMAIN: &str = "provisioning.v1";
