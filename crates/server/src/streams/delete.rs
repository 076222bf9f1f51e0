//! `Streams.Delete` (soft delete) and `Streams.Tombstone`.

use factum_core::{DeleteResult, EventStore, ExpectedRevision};
use factum_proto::shared::StreamIdentifier;
use factum_proto::streams::{
    DeleteReq, DeleteResp, TombstoneReq, TombstoneResp, delete_req, delete_resp, tombstone_req,
    tombstone_resp,
};
use tonic::Status;

use crate::convert::stream_from_wire;
use crate::errors::ApiError;

/// Serves `Delete`: the stream reads as not found afterwards; a later append continues its
/// revisions.
pub async fn delete(store: &dyn EventStore, request: DeleteReq) -> Result<DeleteResp, Status> {
    use delete_req::options::ExpectedStreamRevision as Expected;
    let options = request
        .options
        .ok_or_else(|| ApiError::bad_request("the delete has no options"))?;
    let expected = match options.expected_stream_revision {
        Some(Expected::Revision(revision)) => ExpectedRevision::Exact(revision),
        Some(Expected::NoStream(_)) => ExpectedRevision::NoStream,
        Some(Expected::StreamExists(_)) => ExpectedRevision::StreamExists,
        Some(Expected::Any(_)) | None => ExpectedRevision::Any,
    };
    let result = run(store, options.stream_identifier, expected, false).await?;
    let position = result.position.value();
    Ok(DeleteResp {
        position_option: Some(delete_resp::PositionOption::Position(
            delete_resp::Position {
                commit_position: position,
                prepare_position: position,
            },
        )),
    })
}

/// Serves `Tombstone`: the stream can never be read, written or deleted again.
pub async fn tombstone(
    store: &dyn EventStore,
    request: TombstoneReq,
) -> Result<TombstoneResp, Status> {
    use tombstone_req::options::ExpectedStreamRevision as Expected;
    let options = request
        .options
        .ok_or_else(|| ApiError::bad_request("the tombstone has no options"))?;
    let expected = match options.expected_stream_revision {
        Some(Expected::Revision(revision)) => ExpectedRevision::Exact(revision),
        Some(Expected::NoStream(_)) => ExpectedRevision::NoStream,
        Some(Expected::StreamExists(_)) => ExpectedRevision::StreamExists,
        Some(Expected::Any(_)) | None => ExpectedRevision::Any,
    };
    let result = run(store, options.stream_identifier, expected, true).await?;
    let position = result.position.value();
    Ok(TombstoneResp {
        position_option: Some(tombstone_resp::PositionOption::Position(
            tombstone_resp::Position {
                commit_position: position,
                prepare_position: position,
            },
        )),
    })
}

async fn run(
    store: &dyn EventStore,
    identifier: Option<StreamIdentifier>,
    expected: ExpectedRevision,
    tombstone: bool,
) -> Result<DeleteResult, Status> {
    let stream = stream_from_wire(identifier.as_ref())?;
    let result = if tombstone {
        store.tombstone_stream(&stream, expected).await
    } else {
        store.delete_stream(&stream, expected).await
    };
    match result {
        Ok(result) => Ok(result),
        Err(error) => Err(ApiError::from(error).to_delete_status(&stream, expected)),
    }
}
