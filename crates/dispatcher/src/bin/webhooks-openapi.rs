//! Prints the management API's OpenAPI document, the one the dispatcher serves at
//! `GET /api/v1/openapi.json`, without starting anything: for checks and client generators.
//!
//! `webhooks-openapi > openapi.json`

fn main() {
    println!("{:#}", webhooks_dispatcher::api::spec::document());
}
