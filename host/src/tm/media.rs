//! The media relay as the transaction layer sees it. A route asks for an
//! offer (`rtpengine_offer`); `t_relay` then hands the request's SDP to the
//! relay in a task and sends the branches with the relay's SDP when it
//! answers, so no route and no worker waits on the relay. The relay itself
//! (rtpengine's `ng` client) is a service above this layer and comes in
//! through [`MediaRelay`].

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

/// What a relay answers, later.
pub type MediaFuture<T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send>>;

/// A media relay (rtpengine): SDP in, SDP pointing at the relay out.
pub trait MediaRelay: Send + Sync {
    /// The offer of call `call_id` from `from_tag`, rewritten by the relay.
    fn offer(
        &self,
        call_id: String,
        from_tag: String,
        sdp: Bytes,
        flags: String,
    ) -> MediaFuture<Bytes>;
    /// End the call's media session (rtpengine matches the tags in either
    /// order, so a BYE from either side will do).
    fn delete(&self, call_id: String, from_tag: String, to_tag: Option<String>) -> MediaFuture<()>;
}

impl super::Tm {
    /// Set the media relay (`[rtpengine]`), once, at start.
    pub fn set_media_relay(&self, relay: std::sync::Arc<dyn MediaRelay>) {
        if self.media.set(relay).is_err() {
            tracing::warn!("tm: media relay set twice; the first stays");
        }
    }

    /// The media relay, if the manifest has one.
    pub fn media_relay(&self) -> Option<&std::sync::Arc<dyn MediaRelay>> {
        self.media.get()
    }
}
