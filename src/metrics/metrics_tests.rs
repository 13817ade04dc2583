//! The metrics' names, labels and values as a scrape renders them.

use super::*;
use crate::domain::policy::Mode;

fn text(m: &Metrics) -> String {
    String::from_utf8(
        m.render(7, 2, &[("orders-app".into(), 5), ("batch".into(), 4)])
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn every_series_exists_from_the_start() {
    let m = Metrics::new().unwrap();
    let t = text(&m);
    assert!(t.contains(r#"tokengate_tokens_issued_total{format="opaque",grant="refresh_token",mode="reused"} 0"#));
    assert!(t.contains(r#"tokengate_tokens_revoked_total{cause="refresh_reuse"} 0"#));
    assert!(t.contains(r#"tokengate_validations_total{result="insufficient_scope"} 0"#));
    assert!(t.contains(r#"tokengate_client_auth_failures_total{endpoint="introspect"} 0"#));
    assert!(t.contains("tokengate_active_tokens 7"));
    assert!(t.contains("tokengate_live_tokens 9"));
    assert!(t.contains(r#"tokengate_tokens_refused_total{bound="gateway"} 0"#));
    assert!(t.contains(r#"tokengate_tokens_refused_total{bound="client"} 0"#));
    assert!(t.contains(r#"tokengate_client_live_tokens{client_id="orders-app"} 5"#));
    assert!(t.contains(r#"tokengate_client_live_tokens{client_id="batch"} 4"#));
    assert!(t.contains(r#"tokengate_tokens_expired_total{kind="refresh"} 0"#));
    assert!(t.contains("tokengate_store_purged_rows_total 0"));
    assert!(t.contains("tokengate_store_write_seconds_count 0"));
}

#[test]
fn increments_land_on_their_labels() {
    let m = Metrics::new().unwrap();
    m.issued(GrantType::Password, TokenFormat::Jwt, Outcome::New(Mode::Multi));
    m.issued(GrantType::ClientCredentials, TokenFormat::Opaque, Outcome::Reused);
    m.revoked(RevokeCause::Cap, 2);
    m.validated(Validation::Invalid);
    m.validated(Validation::Ok);
    m.client_auth_failed(0);
    m.tokens_refused(Bound::Client);
    let t = text(&m);
    assert!(t.contains(r#"tokengate_tokens_refused_total{bound="client"} 1"#));
    assert!(t.contains(r#"tokengate_tokens_refused_total{bound="gateway"} 0"#));
    assert!(t.contains(r#"tokengate_tokens_issued_total{format="jwt",grant="password",mode="multi"} 1"#));
    assert!(t.contains(r#"tokengate_tokens_issued_total{format="opaque",grant="client_credentials",mode="reused"} 1"#));
    assert!(t.contains(r#"tokengate_tokens_revoked_total{cause="cap"} 2"#));
    assert!(t.contains(r#"tokengate_validations_total{result="invalid"} 1"#));
    assert!(t.contains(r#"tokengate_validations_total{result="ok"} 1"#));
    assert!(t.contains(r#"tokengate_client_auth_failures_total{endpoint="token"} 1"#));
}

#[test]
fn two_gateways_in_one_process_do_not_share_metrics() {
    let a = Metrics::new().unwrap();
    let b = Metrics::new().unwrap();
    a.validated(Validation::Ok);
    assert!(text(&b).contains(r#"tokengate_validations_total{result="ok"} 0"#));
}

/// A client that no longer holds tokens leaves the per-client gauge at the next scrape.
#[test]
fn clients_holding_nothing_leave_the_per_client_gauge() {
    let m = Metrics::new().unwrap();
    let _ = text(&m);
    let t = String::from_utf8(m.render(0, 0, &[("batch".into(), 1)]).unwrap()).unwrap();
    assert!(t.contains(r#"tokengate_client_live_tokens{client_id="batch"} 1"#));
    assert!(!t.contains("orders-app"));
}
