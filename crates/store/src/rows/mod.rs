//! Row mappings: for each table read from more than one place, its column list and how a row
//! becomes the domain type. The aggregates and the batch reads both use them; they import nothing
//! from either, so neither imports the other.

pub(crate) mod accounts;
pub(crate) mod cards;
pub(crate) mod controls;
pub(crate) mod programs;
pub(crate) mod transactions;
