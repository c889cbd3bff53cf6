//! A kube client whose every request is answered by a function: for faults
//! and server behaviour a real API server cannot produce on demand.

use http::{Request, Response};
use kube::client::Body;

/// A client answering each request with `answer`'s (status, JSON body).
pub fn scripted_client<F>(answer: F) -> kube::Client
where
    F: Fn(&Request<Body>) -> (u16, serde_json::Value) + Clone + Send + Sync + 'static,
{
    let service = tower::service_fn(move |req: Request<Body>| {
        let (code, body) = answer(&req);
        async move {
            Ok::<_, std::convert::Infallible>(
                Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap(),
            )
        }
    });
    kube::Client::new(service, "default")
}
