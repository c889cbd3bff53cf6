//! End-to-end harness for stsmend: a real Kubernetes control plane (etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler v1.20.2) on
//! loopback, with simulated nodes standing in for kubelets.

pub mod assets;
pub mod backend;
pub mod control_plane;
pub mod error;
pub mod kubeconfig;
pub mod kubectl;
pub mod logs;
pub mod pki;
mod process;
pub mod sim;
pub mod wait;

pub use backend::{AnyCluster, Backend};
pub use control_plane::{
    AGENT_USER, Component, ControlPlane, ControlPlaneOptions, LeaseTiming, StaticUser,
};
pub use error::{Error, Result};
pub use wait::wait_until;
