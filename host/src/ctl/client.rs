//! The client side of `wisp ctl`: send argv, print the answer. Blocking:
//! it runs once, at the command line.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{Request, Response};

/// How long a command may take (a write-back flush, a busy router).
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why no answer came back.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the router at {path} (is it running?)")]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("management socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("management socket: bad answer: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Send `args` to the router listening on `socket`.
pub fn call(socket: &Path, args: Vec<String>) -> Result<Response, ClientError> {
    let stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        path: socket.display().to_string(),
        source,
    })?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut line = serde_json::to_string(&Request { args })?;
    line.push('\n');
    (&stream).write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer)?;
    Ok(serde_json::from_str(&answer)?)
}
