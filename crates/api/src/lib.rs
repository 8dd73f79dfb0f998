//! Cardplane's HTTP API. `http/` is the plumbing every route shares (middleware, extractors, the
//! error envelope, replies); `routes/` holds thin handlers (parse, call one workflow, render);
//! `views/` every response shape, one file per resource; `workflows/` the API's own workflows;
//! `openapi` the document; `app`, `state` and `config` put the server together.

pub mod app;
pub mod config;
pub mod console;
pub mod http;
pub mod mail;
pub mod openapi;
pub mod portal;
pub mod routes;
pub mod state;
pub mod views;
pub mod web;
pub mod webhook_listen;
pub mod workflows;

pub use app::{Application, open_state, router};
pub use config::Config;
