//! The route table: which upstream a request path goes to, and what it needs.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::domain::key::ScopeSet;

/// One `[[routes]]` entry, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub path_prefix: String,
    pub upstream: SocketAddr,
    /// Every one of these scopes is required; empty = any valid token.
    pub scopes: ScopeSet,
    /// `false` for a public route that needs no token.
    pub auth: bool,
}

impl Route {
    /// Whether `path` is under this route's prefix, on a segment boundary: `/api/orders` matches
    /// `/api/orders` and `/api/orders/7`, not `/api/ordersX`.
    fn matches(&self, path: &str) -> bool {
        match path.strip_prefix(self.path_prefix.as_str()) {
            Some(rest) => rest.is_empty() || self.path_prefix.ends_with('/') || rest.starts_with('/'),
            None => false,
        }
    }
}

/// Routes ordered for longest-prefix matching.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// Builds the table; a duplicated prefix is returned as the error.
    pub fn new(mut routes: Vec<Route>) -> Result<RouteTable, String> {
        routes.sort_by(|a, b| {
            b.path_prefix
                .len()
                .cmp(&a.path_prefix.len())
                .then(a.path_prefix.cmp(&b.path_prefix))
        });
        for pair in routes.windows(2) {
            if pair[0].path_prefix == pair[1].path_prefix {
                return Err(pair[0].path_prefix.clone());
            }
        }
        Ok(RouteTable {
            routes: routes.into_iter().map(Arc::new).collect(),
        })
    }

    /// The route with the longest prefix matching `path`.
    pub fn find(&self, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.matches(path))
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, port: u16) -> Route {
        Route {
            path_prefix: prefix.into(),
            upstream: SocketAddr::from(([127, 0, 0, 1], port)),
            scopes: ScopeSet::default(),
            auth: true,
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let t = RouteTable::new(vec![route("/api", 1), route("/api/orders", 2), route("/", 3)]).unwrap();
        assert_eq!(t.find("/api/orders/7").unwrap().upstream.port(), 2);
        assert_eq!(t.find("/api/orders").unwrap().upstream.port(), 2);
        assert_eq!(t.find("/api/users").unwrap().upstream.port(), 1);
        assert_eq!(t.find("/other").unwrap().upstream.port(), 3);
    }

    #[test]
    fn prefix_matches_on_segment_boundary() {
        let t = RouteTable::new(vec![route("/api/orders", 2)]).unwrap();
        assert!(t.find("/api/ordersX").is_none());
        assert!(t.find("/api").is_none());
        let t = RouteTable::new(vec![route("/api/", 2)]).unwrap();
        assert!(t.find("/api/x").is_some());
    }

    #[test]
    fn duplicate_prefix_is_refused() {
        assert_eq!(RouteTable::new(vec![route("/a", 1), route("/a", 2)]).unwrap_err(), "/a");
    }
}
