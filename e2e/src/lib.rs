//! End-to-end harness for stsmend: a real Kubernetes control plane (etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler v1.20.2) on
//! loopback, with real nodes (containerd and a kubelet in a container started
//! through testcontainers, [`node`]) or simulated ones ([`sim`]).

pub mod assets;
pub mod backend;
pub mod control_plane;
pub mod docker_api;
pub mod error;
pub mod kubeconfig;
pub mod kubectl;
pub mod logs;
pub mod node;
pub mod pki;
mod process;
pub mod proxy;
pub mod sim;
pub mod wait;

pub use backend::{AnyCluster, Backend};
pub use control_plane::{
    AGENT_USER, Component, ControlPlane, ControlPlaneOptions, LeaseTiming, StaticUser,
};
pub use error::{Error, Result};
pub use wait::wait_until;
