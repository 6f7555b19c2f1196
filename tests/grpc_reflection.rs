//! Reflection (v1 and v1alpha) and health need no credential.
mod common;

use common::{Backend, TestEnv};
use tokio_stream::StreamExt as _;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::{v1, v1alpha};

async fn reflection_lists_and_describes_services(b: Backend) {
    let env = TestEnv::start(b).await;
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(env.channel().await);
    let ask =
        |request: v1::server_reflection_request::MessageRequest| v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        };
    let requests = tokio_stream::iter(vec![
        ask(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
        ask(
            v1::server_reflection_request::MessageRequest::FileContainingSymbol(
                "provisioning.v1.UserService.CreateUser".into(),
            ),
        ),
    ]);
    let mut responses = client
        .server_reflection_info(requests)
        .await
        .unwrap()
        .into_inner();
    let listed = responses.next().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        listed.message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "provisioning.v1.AccountService",
        "provisioning.v1.TokenService",
        "provisioning.v1.UserService",
        "provisioning.v1.AuditService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let described = responses.next().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
        described.message_response
    else {
        panic!("expected a file descriptor");
    };
    use prost::Message as _;
    let file = prost_types::FileDescriptorProto::decode(files.file_descriptor_proto[0].as_slice())
        .unwrap();
    assert_eq!(file.package(), "provisioning.v1");
    let service = file
        .service
        .iter()
        .find(|s| s.name() == "UserService")
        .unwrap();
    let method = service
        .method
        .iter()
        .find(|m| m.name() == "CreateUser")
        .unwrap();
    assert_eq!(method.input_type(), ".provisioning.v1.CreateUserRequest");

    // Older grpcurl speaks v1alpha.
    let mut old =
        v1alpha::server_reflection_client::ServerReflectionClient::new(env.channel().await);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut responses = old
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    assert!(responses.next().await.unwrap().is_ok());
}

async fn health_reports_serving(b: Backend) {
    let env = TestEnv::start(b).await;
    let mut health = HealthClient::new(env.channel().await);
    for service in ["", "provisioning.v1.UserService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32);
    }
}

backend_tests!(
    reflection_lists_and_describes_services,
    health_reports_serving
);
