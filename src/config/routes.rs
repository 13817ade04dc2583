//! The route table: which upstream a request path goes to, and what it needs.

use std::sync::Arc;

use crate::domain::key::ScopeSet;
use crate::upstream::balancer::Balancer;

/// One `[[routes]]` entry, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub path_prefix: String,
    /// The route's servers and how one is chosen for each request.
    pub upstream: Arc<Balancer>,
    /// Every one of these scopes is required; empty = any valid token.
    pub scopes: ScopeSet,
    /// `false` for a public route that needs no token.
    pub auth: bool,
    /// Tokens must carry this audience in `aud`; `None`: any audience.
    pub audience: Option<Arc<str>>,
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
    /// The routes' audiences, sorted, each once: what a client may ask for by default.
    audiences: Vec<Arc<str>>,
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
        let mut audiences: Vec<Arc<str>> = routes.iter().filter_map(|r| r.audience.clone()).collect();
        audiences.sort_unstable();
        audiences.dedup();
        Ok(RouteTable {
            routes: routes.into_iter().map(Arc::new).collect(),
            audiences,
        })
    }

    /// The route with the longest prefix matching `path`.
    pub fn find(&self, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.matches(path))
    }

    /// Whether a route names `uri` as its audience.
    pub fn has_audience(&self, uri: &str) -> bool {
        self.audiences.binary_search_by(|a| (**a).cmp(uri)).is_ok()
    }

    /// Every route, longest prefix first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.iter()
    }

    /// Takes over the balancers of `running` for the routes whose prefix and upstream settings
    /// are unchanged, so that a reload keeps their servers' health, their rotation and their
    /// running checks. Call on a table just built (its routes are not shared yet).
    pub fn keep_balancers(&mut self, running: &RouteTable) {
        for route in &mut self.routes {
            let same = running
                .routes
                .iter()
                .find(|old| old.path_prefix == route.path_prefix && old.upstream == route.upstream);
            if let (Some(old), Some(route)) = (same, Arc::get_mut(route)) {
                route.upstream = Arc::clone(&old.upstream);
            }
        }
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
    use crate::upstream::settings::UpstreamSettings;
    use std::net::SocketAddr;

    fn route(prefix: &str, port: u16) -> Route {
        let settings = UpstreamSettings::plain(&[SocketAddr::from(([127, 0, 0, 1], port))]);
        Route {
            path_prefix: prefix.into(),
            upstream: Arc::new(Balancer::new(prefix, settings).unwrap()),
            scopes: ScopeSet::default(),
            auth: true,
            audience: None,
        }
    }

    fn port(route: &Route) -> u16 {
        route.upstream.settings().servers[0].port
    }

    #[test]
    fn longest_prefix_wins() {
        let t = RouteTable::new(vec![route("/api", 1), route("/api/orders", 2), route("/", 3)]).unwrap();
        assert_eq!(port(t.find("/api/orders/7").unwrap()), 2);
        assert_eq!(port(t.find("/api/orders").unwrap()), 2);
        assert_eq!(port(t.find("/api/users").unwrap()), 1);
        assert_eq!(port(t.find("/other").unwrap()), 3);
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
    fn a_reload_keeps_the_balancers_of_unchanged_routes() {
        let running = RouteTable::new(vec![route("/a", 1), route("/b", 2)]).unwrap();
        let mut next = RouteTable::new(vec![route("/a", 1), route("/b", 3), route("/c", 1)]).unwrap();
        next.keep_balancers(&running);
        let same = |t: &RouteTable, u: &RouteTable, p: &str| {
            Arc::ptr_eq(&t.find(p).unwrap().upstream, &u.find(p).unwrap().upstream)
        };
        assert!(same(&next, &running, "/a"), "unchanged: kept");
        assert!(!same(&next, &running, "/b"), "other server: rebuilt");
        assert_eq!(port(next.find("/b").unwrap()), 3);
        assert_eq!(next.iter().count(), 3);
    }

    #[test]
    fn duplicate_prefix_is_refused() {
        assert_eq!(RouteTable::new(vec![route("/a", 1), route("/a", 2)]).unwrap_err(), "/a");
    }
}
