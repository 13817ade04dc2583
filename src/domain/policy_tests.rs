use super::*;

const S: u64 = 1000;

fn tok(iat_s: u64, exp_s: u64) -> ActiveToken {
    ActiveToken {
        issued_at_ms: iat_s * S,
        expires_at_ms: exp_s * S,
    }
}

fn cc() -> GrantType {
    GrantType::ClientCredentials
}

#[test]
fn defaults_are_single_mode_for_every_grant() {
    let p = RenewPolicy::default();
    for g in GrantType::ALL {
        assert_eq!(p.mode(g), Mode::Single);
    }
}

#[test]
fn enable_applies_to_allowed_grants_only() {
    let p = RenewPolicy {
        enable: true,
        ..RenewPolicy::default()
    };
    assert_eq!(p.mode(cc()), Mode::Multi);
    assert_eq!(p.mode(GrantType::Password), Mode::Single);
    assert_eq!(p.mode(GrantType::RefreshToken), Mode::Single);
}

#[test]
fn a_given_list_replaces_the_default() {
    let p = RenewPolicy {
        enable: true,
        allowed_grant_types: GrantSet::of(&[GrantType::Password]),
        max_active_tokens: 0,
    };
    assert_eq!(p.mode(cc()), Mode::Single);
    assert_eq!(p.mode(GrantType::Password), Mode::Multi);
}

#[test]
fn jwt_single_revokes_every_other_active_token() {
    let active = [tok(0, 100), tok(10, 110), tok(20, 120)];
    let d = decide(TokenFormat::Jwt, Mode::Single, true, 0, &active, 30 * S);
    assert_eq!(
        d,
        Decision::Issue {
            retire: vec![
                (0, Retire::RevokeRenewal),
                (1, Retire::RevokeRenewal),
                (2, Retire::RevokeRenewal)
            ]
        }
    );
}

#[test]
fn jwt_single_with_nothing_issues() {
    assert_eq!(
        decide(TokenFormat::Jwt, Mode::Single, true, 0, &[], 0),
        Decision::Issue { retire: vec![] }
    );
}

#[test]
fn multi_keeps_others_active() {
    for f in [TokenFormat::Jwt, TokenFormat::Opaque] {
        let active = [tok(0, 100), tok(10, 110)];
        assert_eq!(
            decide(f, Mode::Multi, true, 0, &active, 20 * S),
            Decision::Issue { retire: vec![] }
        );
    }
}

#[test]
fn multi_cap_revokes_the_oldest() {
    let active = [tok(0, 100), tok(10, 110), tok(20, 120)];
    let d = decide(TokenFormat::Jwt, Mode::Multi, true, 2, &active, 30 * S);
    assert_eq!(
        d,
        Decision::Issue {
            retire: vec![(0, Retire::RevokeCap), (1, Retire::RevokeCap)]
        }
    );
    let d = decide(TokenFormat::Opaque, Mode::Multi, true, 4, &active, 30 * S);
    assert_eq!(d, Decision::Issue { retire: vec![] });
}

#[test]
fn multi_cap_does_not_count_expired_tokens() {
    let active = [tok(0, 5), tok(10, 110)];
    let d = decide(TokenFormat::Jwt, Mode::Multi, true, 2, &active, 30 * S);
    assert_eq!(
        d,
        Decision::Issue {
            retire: vec![(0, Retire::Expire)]
        }
    );
}

#[test]
fn opaque_single_returns_the_newest_usable_token() {
    let active = [tok(0, 100), tok(10, 110)];
    let d = decide(TokenFormat::Opaque, Mode::Single, true, 0, &active, 30 * S + 400);
    assert_eq!(
        d,
        Decision::Reuse {
            index: 1,
            expires_in_secs: 79
        }
    );
}

#[test]
fn opaque_single_expires_in_never_exceeds_the_lifetime() {
    let active = [tok(10, 110)];
    // A clock that went backwards must not stretch the answer past the original 100 s.
    let d = decide(TokenFormat::Opaque, Mode::Single, true, 0, &active, 5 * S);
    assert_eq!(
        d,
        Decision::Reuse {
            index: 0,
            expires_in_secs: 100
        }
    );
}

#[test]
fn opaque_single_within_one_second_of_expiry_issues_and_expires_the_old() {
    let active = [tok(0, 100)];
    let d = decide(TokenFormat::Opaque, Mode::Single, true, 0, &active, 99 * S);
    assert_eq!(
        d,
        Decision::Issue {
            retire: vec![(0, Retire::Expire)]
        }
    );
    let d = decide(TokenFormat::Opaque, Mode::Single, true, 0, &active, 99 * S - 1);
    assert_eq!(
        d,
        Decision::Reuse {
            index: 0,
            expires_in_secs: 1
        }
    );
}

#[test]
fn opaque_single_with_expired_token_issues() {
    let active = [tok(0, 100)];
    let d = decide(TokenFormat::Opaque, Mode::Single, true, 0, &active, 200 * S);
    assert_eq!(
        d,
        Decision::Issue {
            retire: vec![(0, Retire::Expire)]
        }
    );
}

#[test]
fn opaque_single_skips_a_newer_token_near_expiry() {
    // After a TTL change an older token may outlive a newer one.
    let active = [tok(0, 500), tok(10, 31)];
    let d = decide(TokenFormat::Opaque, Mode::Single, true, 0, &active, 30 * S + 500);
    assert_eq!(
        d,
        Decision::Reuse {
            index: 0,
            expires_in_secs: 469
        }
    );
}

#[test]
fn refresh_in_opaque_single_never_reuses() {
    let active = [tok(0, 100)];
    let d = decide(TokenFormat::Opaque, Mode::Single, false, 0, &active, 10 * S);
    assert_eq!(
        d,
        Decision::Issue {
            retire: vec![(0, Retire::RevokeRenewal)]
        }
    );
}

#[test]
fn after_multi_to_single_jwt_revokes_all_and_opaque_returns_newest() {
    let active = [tok(0, 100), tok(1, 101), tok(2, 102)];
    match decide(TokenFormat::Jwt, Mode::Single, true, 0, &active, 3 * S) {
        Decision::Issue { retire } => assert_eq!(retire.len(), 3),
        d => panic!("unexpected {d:?}"),
    }
    assert_eq!(
        decide(TokenFormat::Opaque, Mode::Single, true, 0, &active, 3 * S),
        Decision::Reuse {
            index: 2,
            expires_in_secs: 99
        }
    );
}

#[test]
fn opaque_single_prefers_the_later_of_tokens_issued_in_the_same_second() {
    let active = [tok(10, 110), tok(10, 110), tok(10, 110)];
    assert_eq!(
        decide(TokenFormat::Opaque, Mode::Single, true, 0, &active, 20 * S),
        Decision::Reuse {
            index: 2,
            expires_in_secs: 90
        }
    );
}
