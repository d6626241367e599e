//! How much of the gateway requests may hold at once: so many in progress
//! over all clients, and so many for one access key, so that one client's
//! stalled or runaway requests leave room for everyone else's. Beyond
//! either, a request is answered 503 SlowDown at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;
use crate::error::{Code, S3Error};

/// Access keys remembered before the idle ones are forgotten.
const MAX_KEYS: usize = 10_000;

pub struct Admission {
    all: Arc<Semaphore>,
    per_key: Mutex<HashMap<String, Arc<Semaphore>>>,
    per_key_max: usize,
}

/// A request's places, held until its answer is sent (a streamed body
/// holds them until its last byte).
pub struct Admitted {
    _all: OwnedSemaphorePermit,
    _key: OwnedSemaphorePermit,
}

impl Admission {
    pub fn new(limits: &Limits) -> Admission {
        Admission {
            all: Arc::new(Semaphore::new(limits.max_requests.max(1))),
            per_key: Mutex::new(HashMap::new()),
            per_key_max: limits.max_requests_per_key.max(1),
        }
    }

    /// A place among all requests.
    pub fn enter(&self) -> Result<OwnedSemaphorePermit, S3Error> {
        self.all
            .clone()
            .try_acquire_owned()
            .map_err(|_| slow_down("The gateway is serving as many requests as it takes."))
    }

    /// A place among the requests of `access_key`, for a request that has one among all.
    pub fn enter_as(&self, all: OwnedSemaphorePermit, access_key: &str) -> Result<Admitted, S3Error> {
        let semaphore = {
            let mut per_key = self.per_key.lock().unwrap_or_else(|e| e.into_inner());
            if per_key.len() >= MAX_KEYS && !per_key.contains_key(access_key) {
                per_key.retain(|_, s| s.available_permits() < self.per_key_max);
            }
            per_key.entry(access_key.to_string()).or_insert_with(|| Arc::new(Semaphore::new(self.per_key_max))).clone()
        };
        let key = semaphore
            .try_acquire_owned()
            .map_err(|_| slow_down("This access key has as many requests in progress as it may."))?;
        Ok(Admitted { _all: all, _key: key })
    }
}

fn slow_down(message: &str) -> S3Error {
    S3Error::new(Code::SlowDown).with_message(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_cannot_take_every_place() {
        let limits = Limits { max_requests: 5, max_requests_per_key: 2, ..Limits::default() };
        let admission = Admission::new(&limits);
        let a1 = admission.enter_as(admission.enter().unwrap(), "A").unwrap();
        let _a2 = admission.enter_as(admission.enter().unwrap(), "A").unwrap();
        let refused = admission.enter_as(admission.enter().unwrap(), "A").err().unwrap();
        assert_eq!(refused.code, Code::SlowDown);
        let _b = admission.enter_as(admission.enter().unwrap(), "B").unwrap();
        drop(a1);
        let _a3 = admission.enter_as(admission.enter().unwrap(), "A").unwrap();
        let _c = admission.enter().unwrap();
        let _d = admission.enter().unwrap();
        assert_eq!(admission.enter().unwrap_err().code, Code::SlowDown, "five in all");
    }
}
