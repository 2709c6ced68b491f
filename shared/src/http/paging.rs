//! Paging of the listings: `limit` and `cursor` as the handlers read them ([`Paging`]),
//! and their description for each page size ([`Page100`], [`Page1000`]).
//!
//! A limit outside its range is a 400 naming `limit`, never silently clamped; a cursor the
//! listing did not return is a 400 naming `cursor`; an empty parameter is an absent one
//! (see [`super::Query`]).

use super::error::ApiError;
use serde::Deserialize;
use utoipa::IntoParams;

/// `limit` and `cursor` as given; the limit is read as text so that a bad one gets this
/// API's message.
#[derive(Debug, Default, Deserialize)]
pub struct Paging {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

impl Paging {
    /// The page size: `default` when absent, else a whole number from 1 to `max`.
    pub fn limit(&self, default: u32, max: u32) -> Result<u32, ApiError> {
        super::page_limit(self.limit.as_deref(), default, max)
    }
}

/// Paging of a listing of at most 100 a page (the description of [`Paging`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct Page100 {
    /// Page size, 1 to 100 (default 50); anything else is a 400 naming `limit`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page. A value this listing did not return is a 400
    /// naming `cursor`; an empty one is the same as none (the first page).
    cursor: Option<String>,
}

/// Paging of a listing of at most 1000 a page (the description of [`Paging`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct Page1000 {
    /// Page size, 1 to 1000 (default 100); anything else is a 400 naming `limit`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page. A value this listing did not return is a 400
    /// naming `cursor`; an empty one is the same as none (the first page).
    cursor: Option<String>,
}
