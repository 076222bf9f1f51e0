//! The calls the store makes: a cheap-to-clone handle on the connection that adds the
//! connection's headers and deadline to each request.

use std::time::Duration;

use factum_core::{AllStart, Direction, Error, Position};
use factum_proto::streams::streams_client::StreamsClient;
use factum_proto::streams::{ReadReq, ReadResp, read_req, read_resp};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Request, Status, Streaming};

use crate::errors::{self, Context};
use crate::url::ConnectionSettings;
use crate::wire;

/// A handle on the connection. Clones share it (tonic multiplexes calls on one HTTP/2
/// connection and reconnects after a failure).
#[derive(Clone)]
pub struct Calls {
    /// The generated client.
    pub client: StreamsClient<Channel>,
    /// Sent as `connection-name` with every call.
    connection_name: Option<MetadataValue<Ascii>>,
    /// Sent as `authorization` (basic credentials) with every call.
    authorization: Option<MetadataValue<Ascii>>,
    /// The deadline of every call but subscriptions.
    deadline: Option<Duration>,
}

impl Calls {
    /// Calls on `client`, with the headers and deadline of the connection's settings.
    pub fn new(client: StreamsClient<Channel>, settings: &ConnectionSettings) -> Calls {
        let connection_name = settings.connection_name.as_deref();
        Calls {
            client,
            // A name that is no valid header text is not sent: it only labels the connection.
            connection_name: connection_name.and_then(|name| MetadataValue::try_from(name).ok()),
            authorization: settings.credentials.as_ref().map(|credentials| {
                let mut value = MetadataValue::try_from(credentials.authorization())
                    .expect("basic credentials are base64, valid header text");
                value.set_sensitive(true);
                value
            }),
            deadline: settings.default_deadline,
        }
    }

    /// A request with the connection's headers, and its deadline unless it is `lasting` (a
    /// subscription).
    pub fn request<T>(&self, message: T, lasting: bool) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(name) = &self.connection_name {
            request
                .metadata_mut()
                .insert("connection-name", name.clone());
        }
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        if let (Some(deadline), false) = (self.deadline, lasting) {
            request.set_timeout(deadline);
        }
        request
    }

    /// Starts a read (or, `lasting`, a subscription); its messages arrive as the caller takes
    /// them.
    pub async fn read(
        &self,
        options: read_req::Options,
        lasting: bool,
    ) -> Result<Streaming<ReadResp>, Status> {
        let request = self.request(
            ReadReq {
                options: Some(options),
            },
            lasting,
        );
        let response = self.client.clone().read(request).await?;
        Ok(response.into_inner())
    }

    /// The events of a `$all` read without a filter, system events included, all at once:
    /// for the short reads that locate the ends of the log.
    pub async fn read_all_unfiltered(
        &self,
        from: AllStart,
        direction: Direction,
        count: u64,
    ) -> Result<Vec<Position>, Error> {
        let status_error = |status: Status| errors::from_status(&status, Context::default());
        let mut messages = self
            .read(wire::all_read(from, direction, count, None), false)
            .await
            .map_err(status_error)?;
        let mut positions = Vec::new();
        while let Some(message) = messages.message().await.map_err(status_error)? {
            if let Some(position) = event_position(&message) {
                positions.push(position);
            }
        }
        Ok(positions)
    }

    /// The position of the last event of the log, `Position(0)` when it is empty.
    pub async fn head(&self) -> Result<Position, Error> {
        let newest = self
            .read_all_unfiltered(AllStart::End, Direction::Backwards, 1)
            .await?;
        Ok(newest.first().copied().unwrap_or(Position::START))
    }

    /// The position of the first event of the log, `None` when it is empty.
    pub async fn first_position(&self) -> Result<Option<Position>, Error> {
        let oldest = self
            .read_all_unfiltered(AllStart::Start, Direction::Forwards, 1)
            .await?;
        Ok(oldest.first().copied())
    }
}

/// The position of the event a read message carries, if it carries one.
pub fn event_position(message: &ReadResp) -> Option<Position> {
    match &message.content {
        Some(read_resp::Content::Event(read_resp::ReadEvent {
            event: Some(event), ..
        })) => Some(Position(event.commit_position)),
        _ => None,
    }
}
