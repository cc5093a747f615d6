//! Stream framing: partial reads, pipelining, keepalives, limits.

use wisp_sip::{FrameError, Message, StreamFramer};

const MSG: &[u8] =
    b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 5\r\n\r\nhello";

#[test]
fn split_across_reads() {
    let mut f = StreamFramer::new(4096);
    for chunk in MSG.chunks(7) {
        assert_eq!(f.next_message().unwrap(), None);
        f.buffer_mut().extend_from_slice(chunk);
    }
    let m = f.next_message().unwrap().unwrap();
    assert_eq!(&m[..], MSG);
    assert_eq!(f.next_message().unwrap(), None);
    assert_eq!(&Message::parse(m).unwrap().body()[..], b"hello");
}

#[test]
fn two_messages_and_keepalives() {
    let mut f = StreamFramer::new(4096);
    f.buffer_mut().extend_from_slice(b"\r\n\r\n");
    f.buffer_mut().extend_from_slice(MSG);
    f.buffer_mut().extend_from_slice(b"\r\n\r\n");
    f.buffer_mut().extend_from_slice(MSG);
    f.buffer_mut().extend_from_slice(&MSG[..10]);
    assert_eq!(&f.next_message().unwrap().unwrap()[..], MSG);
    assert_eq!(&f.next_message().unwrap().unwrap()[..], MSG);
    assert_eq!(f.next_message().unwrap(), None);
    assert_eq!(f.take_pings(), 2);
    f.buffer_mut().extend_from_slice(&MSG[10..]);
    assert_eq!(&f.next_message().unwrap().unwrap()[..], MSG);
    // Only keepalives: nothing to return.
    f.buffer_mut().extend_from_slice(b"\r\n\r\n");
    assert_eq!(f.next_message().unwrap(), None);
}

#[test]
fn limits_and_errors() {
    let mut f = StreamFramer::new(32);
    f.buffer_mut().extend_from_slice(&[b'A'; 40]);
    assert_eq!(f.next_message(), Err(FrameError::TooLarge));

    let mut f = StreamFramer::new(60);
    f.buffer_mut()
        .extend_from_slice(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1000\r\n\r\n");
    assert_eq!(f.next_message(), Err(FrameError::TooLarge));

    let mut f = StreamFramer::new(4096);
    f.buffer_mut()
        .extend_from_slice(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n");
    assert_eq!(f.next_message(), Err(FrameError::MissingContentLength));

    let mut f = StreamFramer::new(4096);
    f.buffer_mut()
        .extend_from_slice(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n");
    assert!(matches!(f.next_message(), Err(FrameError::Malformed(_))));

    // LF-only header terminator is tolerated.
    let mut f = StreamFramer::new(4096);
    f.buffer_mut()
        .extend_from_slice(b"OPTIONS sip:a@b SIP/2.0\nContent-Length   :  2\n\nok");
    assert_eq!(f.next_message().unwrap().unwrap().len(), 49);
}
