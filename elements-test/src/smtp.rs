//! An SMTP server on loopback that keeps every message in memory: the
//! runtime's real mail service (lettre, over TCP) delivers to it, so a test
//! sees exactly what an SMTP relay would have received.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One message as the SMTP server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The message: headers and body, as sent (MIME-encoded), with the
    /// transparency dots removed.
    pub data: String,
}

impl Mail {
    /// The `Subject` header's value.
    pub fn subject(&self) -> Option<&str> {
        self.data
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix("Subject: "))
    }

    /// The message with quoted-printable soft line breaks and `=3D` undone,
    /// so a link or phrase in the body can be searched for as written.
    pub fn decoded(&self) -> String {
        self.data
            .replace("=\r\n", "")
            .replace("=\n", "")
            .replace("=3D", "=")
    }
}

/// The server and what it received.
pub struct Sink {
    port: u16,
    received: Arc<Mutex<Vec<Mail>>>,
}

impl Sink {
    /// Listens on a free loopback port and serves every connection.
    pub async fn start() -> std::io::Result<Arc<Sink>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let sink = Arc::new(Sink {
            port: listener.local_addr()?.port(),
            received: Arc::default(),
        });
        let received = sink.received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let received = received.clone();
                tokio::spawn(async move {
                    // A client that breaks off mid-conversation loses only its message.
                    let _ = session(stream, received).await;
                });
            }
        });
        Ok(sink)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn messages(&self) -> Vec<Mail> {
        self.received.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One SMTP conversation (RFC 5321's commands a relay client sends; lettre
/// may send several messages over one pooled connection).
async fn session(stream: TcpStream, received: Arc<Mutex<Vec<Mail>>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 elements-test ESMTP\r\n").await?;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-elements-test\r\n250 8BITMIME\r\n",
            "HELO" => b"250 elements-test\r\n",
            "MAIL" => {
                from = address(&command);
                to.clear();
                b"250 OK\r\n"
            }
            "RCPT" => {
                to.push(address(&command));
                b"250 OK\r\n"
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                received.lock().unwrap_or_else(|e| e.into_inner()).push(Mail {
                    from: std::mem::take(&mut from),
                    to: std::mem::take(&mut to),
                    data,
                });
                b"250 OK queued\r\n"
            }
            "RSET" => {
                from.clear();
                to.clear();
                b"250 OK\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"250 OK\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// The address in `MAIL FROM:<a@b> ...` or `RCPT TO:<a@b>`.
fn address(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_owned())
        .unwrap_or_default()
}
