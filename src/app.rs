//! The Elm-style application: `Model` (plain data), `Message` (everything that can happen),
//! `update` (pure: changes the model, returns `Effect`s for the runner to execute) and the
//! keymap and command parser. No terminal, no channels, no IO here; `ui` draws the model.

pub mod commands;
pub mod input;
pub mod keymap;
pub mod message;
pub mod messenger;
pub mod model;
pub mod scrollback;
pub mod texts;
pub mod update;

pub use message::{Effect, Message};
pub use model::Model;
pub use update::update;
