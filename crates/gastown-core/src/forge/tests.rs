use serde_json::json;

use super::*;
use crate::config::{GitAuth, TownConfig};

fn auth() -> GitAuth {
    GitAuth { github_token: Some("ghp_tok".into()), gitlab_token: Some("glpat_tok".into()), ..Default::default() }
}

#[test]
fn the_forge_and_api_base_come_from_the_git_url_and_the_town_settings() {
    let t = forge_target("https://github.com/Acme/web.git", None, None, &auth(), false).unwrap();
    assert_eq!(t, ForgeTarget { kind: ForgeKind::Github, api_base: "https://api.github.com".into(), repo: "Acme/web".into() });
    let t = forge_target("git@github.com:acme/web.git", None, None, &auth(), false).unwrap();
    assert_eq!((t.kind, t.repo.as_str()), (ForgeKind::Github, "acme/web"));
    let ghe = GitAuth { github_url: Some("https://ghe.corp.example/".into()), ..auth() };
    let t = forge_target("https://GHE.corp.example/team/app", None, None, &ghe, false).unwrap();
    assert_eq!(t.api_base, "https://ghe.corp.example/api/v3");
    let t = forge_target("ssh://git@gitlab.com:22/group/sub/proj.git", None, None, &auth(), false).unwrap();
    assert_eq!(t, ForgeTarget { kind: ForgeKind::Gitlab, api_base: "https://gitlab.com/api/v4".into(), repo: "group/sub/proj".into() });
    let own = GitAuth { gitlab_instance_url: Some("https://code.example.org".into()), ..auth() };
    assert_eq!(forge_target("https://code.example.org/a/b", None, None, &own, false).unwrap().api_base, "https://code.example.org/api/v4");
    // A host that is neither configured forge, or a local path, needs the rig to say.
    assert!(matches!(forge_target("https://github.com.evil.example/a/b", None, None, &auth(), false), Err(ForgeError::Unknown(_))));
    assert!(matches!(forge_target("/srv/git/app.git", None, None, &auth(), false), Err(ForgeError::Unknown(_))));
    let t = forge_target("/srv/git/app.git", Some(ForgeKind::Github), Some("acme/app"), &auth(), false).unwrap();
    assert_eq!(t.api_base, "https://api.github.com", "the rig picks a repository, never a host");
    // Repository paths are checked before they go into a URL.
    for bad in ["acme", "acme/../x", "a/b/c", "a/b?x", "a/b c"] {
        assert!(forge_target("/x", Some(ForgeKind::Github), Some(bad), &auth(), false).is_err(), "{bad}");
    }
    assert!(forge_target("/x", Some(ForgeKind::Gitlab), Some("g/s/p"), &auth(), false).is_ok());
}

#[test]
fn loopback_http_forges_only_in_development() {
    let dev = GitAuth { github_url: Some("http://127.0.0.1:4567".into()), ..auth() };
    let t = forge_target("/x.git", Some(ForgeKind::Github), Some("a/b"), &dev, true).unwrap();
    assert_eq!(t.api_base, "http://127.0.0.1:4567/api/v3");
    assert!(matches!(forge_target("/x.git", Some(ForgeKind::Github), Some("a/b"), &dev, false), Err(ForgeError::BadUrl(_))));
    for url in ["http://example.com", "http://127.0.0.1.evil.example", "https://user:pw@github.com", "ftp://127.0.0.1"] {
        assert!(check_base_url("f", url, true).is_err(), "{url}");
    }
    assert!(check_base_url("f", "http://localhost:80", true).is_ok());
    // And in the town config: a patch from production refuses it, development takes it.
    let mut c = TownConfig::default();
    let p = || serde_json::from_value(json!({"git_auth": {"github_url": "http://127.0.0.1:9"}})).unwrap();
    assert!(c.apply_patch_in(p(), false).is_err());
    assert!(c.apply_patch_in(p(), true).is_ok());
}

#[test]
fn the_token_goes_only_to_the_configured_api() {
    let t = forge_target("https://github.com/acme/web", None, None, &auth(), false).unwrap();
    let h = auth_headers(&t, "https://api.github.com/repos/acme/web/pulls", "tok").unwrap();
    assert!(h.contains(&("authorization".into(), "Bearer tok".into())));
    for url in [
        "https://github.com/repos/acme/web",
        "http://api.github.com/repos/acme/web",
        "https://api.github.com.evil.example/repos",
        "https://evil@api.github.com/repos/x",
        "https://api.github.com:444/repos/x",
        "https://ci.example.com/build/1",
        "not a url",
    ] {
        assert!(matches!(auth_headers(&t, url, "tok"), Err(ForgeError::WrongHost(_))), "{url}");
    }
    let gl = forge_target("https://gitlab.com/g/p", None, None, &auth(), false).unwrap();
    let h = auth_headers(&gl, &gl.get_pr(3).url, "glpat").unwrap();
    assert!(h.contains(&("private-token".into(), "glpat".into())) && !h.iter().any(|(k, _)| k == "authorization"));
    // Every request the refinery builds is on the API base.
    for r in [
        t.open_pr("b", "main", "t", "x"),
        t.get_pr(1),
        t.merge(1, "s"),
        t.commit_status("s", StatusState::Success, "d"),
        t.find_open_pr("gt/a/b"),
    ] {
        assert!(auth_headers(&t, &r.url, "tok").is_ok(), "{}", r.url);
    }
    assert_eq!(gl.get_pr(3).url, "https://gitlab.com/api/v4/projects/g%2Fp/merge_requests/3");
    assert!(matches!(token_for(ForgeKind::Github, &GitAuth::default()), Err(ForgeError::NoToken(_))));
}

#[test]
fn requests_have_the_forges_shapes() {
    let t = forge_target("https://github.com/acme/web", None, None, &auth(), false).unwrap();
    let r = t.open_pr("gt/nux/gt-1", "main", "Fix it", "body");
    assert_eq!((r.method.as_str(), r.url.as_str()), ("POST", "https://api.github.com/repos/acme/web/pulls"));
    assert_eq!(r.body.unwrap()["head"], "gt/nux/gt-1");
    assert_eq!(t.find_open_pr("gt/nux/gt-1").url, "https://api.github.com/repos/acme/web/pulls?state=open&head=acme%3Agt%2Fnux%2Fgt-1");
    let s = t.commit_status("abc", StatusState::Failure, "gates failed");
    assert_eq!(s.body.unwrap()["context"], STATUS_CONTEXT);
    let gl = forge_target("https://gitlab.com/g/p", None, None, &auth(), false).unwrap();
    let r = gl.open_pr("gt/nux/gt-1", "main", "Fix it", "body");
    let b = r.body.unwrap();
    assert_eq!(
        (b["source_branch"].as_str(), b["target_branch"].as_str(), b["labels"].as_str()),
        (Some("gt/nux/gt-1"), Some("main"), Some(PR_LABEL))
    );
    assert_eq!(gl.commit_status("abc", StatusState::Failure, "x").body.unwrap()["state"], "failed");
    assert_eq!(gl.merge(2, "s").body.unwrap()["merge_when_pipeline_succeeds"], true);
}

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[test]
fn webhooks_are_verified_before_anything_is_read() {
    let body = br#"{"action":"closed"}"#;
    let good = sign("s3cret-0123456789", body);
    assert!(verify_webhook(ForgeKind::Github, "s3cret-0123456789", Some(&good), body));
    assert!(verify_webhook(ForgeKind::Github, "s3cret-0123456789", Some(&good.to_uppercase().replace("SHA256=", "sha256=")), body));
    assert!(!verify_webhook(ForgeKind::Github, "other-secret-0123456", Some(&good), body), "another secret");
    assert!(!verify_webhook(ForgeKind::Github, "s3cret-0123456789", Some(&good), br#"{"action":"opened"}"#), "a changed body");
    assert!(!verify_webhook(ForgeKind::Github, "s3cret-0123456789", Some(good.trim_start_matches("sha256=")), body), "no prefix");
    assert!(!verify_webhook(ForgeKind::Github, "s3cret-0123456789", None, body), "unsigned");
    assert!(!verify_webhook(ForgeKind::Github, "", Some(&sign("", body)), body), "no secret configured");
    assert!(verify_webhook(ForgeKind::Gitlab, "tok-0123456789abcdef", Some("tok-0123456789abcdef"), body));
    assert!(!verify_webhook(ForgeKind::Gitlab, "tok-0123456789abcdef", Some("tok-0123456789abcdeF"), body));
    assert!(!verify_webhook(ForgeKind::Gitlab, "tok-0123456789abcdef", Some("tok"), body));
}

#[test]
fn github_events_map_to_signals() {
    let repo = json!({"full_name": "acme/web"});
    let ev = |e: &str, v: serde_json::Value| parse_webhook(ForgeKind::Github, e, &v).unwrap();
    let merged = ev(
        "pull_request",
        json!({"action": "closed", "repository": repo, "pull_request": {"number": 7, "merged": true, "merge_commit_sha": "m1"}}),
    )
    .unwrap();
    assert_eq!(merged.key.number, Some(7));
    assert_eq!(merged.signals, vec![PrSignal::Merged { merge_sha: Some("m1".into()) }]);
    let closed =
        ev("pull_request", json!({"action": "closed", "repository": repo, "pull_request": {"number": 7, "merged": false}})).unwrap();
    assert_eq!(closed.signals, vec![PrSignal::Closed]);
    assert!(ev("pull_request", json!({"action": "synchronize", "repository": repo, "pull_request": {"number": 7}})).is_none());
    assert!(ev("ping", json!({"zen": "x"})).is_none());
    let review = ev(
        "pull_request_review",
        json!({"action": "submitted", "repository": repo, "pull_request": {"number": 7},
        "review": {"id": 99, "state": "changes_requested", "body": "fix", "user": {"login": "al"}, "commit_id": "h1"}}),
    )
    .unwrap();
    match &review.signals[0] {
        PrSignal::Review(r) => {
            assert_eq!((r.id, r.kind, r.body.as_str(), r.author.as_str()), (99, ReviewKind::ChangesRequested, "fix", "al"))
        }
        s => panic!("{s:?}"),
    }
    let check = ev("check_run", json!({"action": "completed", "repository": repo,
        "check_run": {"name": "ci/build", "head_sha": "h1", "conclusion": "failure", "details_url": "https://ci/1", "pull_requests": [{"number": 7}]}}))
    .unwrap();
    assert_eq!((check.key.number, check.key.sha.as_deref()), (Some(7), Some("h1")));
    assert_eq!(
        check.signals,
        vec![PrSignal::Check(CheckResult {
            name: "ci/build".into(),
            state: CheckState::Failure,
            url: Some("https://ci/1".into()),
            sha: "h1".into()
        })]
    );
    let status =
        ev("status", json!({"repository": repo, "sha": "h1", "state": "error", "context": "lint", "target_url": "https://ci/2"})).unwrap();
    assert_eq!((status.key.number, status.key.sha.as_deref()), (None, Some("h1")));
    assert!(matches!(&status.signals[0], PrSignal::Check(c) if c.state == CheckState::Failure && c.name == "lint"));
    assert!(
        parse_webhook(ForgeKind::Github, "pull_request", &json!({"action": "closed", "pull_request": {"number": 1}})).is_err(),
        "no repository"
    );
}

#[test]
fn gitlab_events_map_to_signals() {
    let project = json!({"path_with_namespace": "g/p", "web_url": "https://gl/g/p"});
    let ev = |e: &str, v: serde_json::Value| parse_webhook(ForgeKind::Gitlab, e, &v).unwrap();
    let m =
        ev("Merge Request Hook", json!({"project": project, "object_attributes": {"iid": 3, "action": "merge", "merge_commit_sha": "m"}}))
            .unwrap();
    assert_eq!((m.key.number, m.signals.clone()), (Some(3), vec![PrSignal::Merged { merge_sha: Some("m".into()) }]));
    let c = ev("Merge Request Hook", json!({"project": project, "object_attributes": {"iid": 3, "action": "close"}})).unwrap();
    assert_eq!(c.signals, vec![PrSignal::Closed]);
    assert!(ev("Merge Request Hook", json!({"project": project, "object_attributes": {"iid": 3, "action": "update"}})).is_none());
    let n = ev(
        "Note Hook",
        json!({"project": project, "user": {"username": "bo"}, "merge_request": {"iid": 3},
        "object_attributes": {"id": 8, "note": "rename it", "noteable_type": "MergeRequest"}}),
    )
    .unwrap();
    assert!(matches!(&n.signals[0], PrSignal::Review(r) if r.kind == ReviewKind::Comment && r.body == "rename it" && r.id == 8));
    assert!(ev("Note Hook", json!({"project": project, "object_attributes": {"id": 8, "noteable_type": "Issue"}})).is_none());
    let p = ev("Pipeline Hook", json!({"project": project, "merge_request": {"iid": 3},
        "object_attributes": {"id": 77, "status": "failed", "sha": "h"}, "builds": [{"name": "test", "status": "failed"}, {"name": "lint", "status": "success"}]}))
    .unwrap();
    assert!(
        matches!(&p.signals[0], PrSignal::Check(c) if c.state == CheckState::Failure && c.name == "pipeline #77 (test)" && c.url.as_deref() == Some("https://gl/g/p/-/pipelines/77"))
    );
}

#[test]
fn polls_read_the_same_signals_and_back_off() {
    let pr = parse_pr(ForgeKind::Github, &json!({"number": 4, "state": "open", "html_url": "u", "head": {"sha": "h"}, "mergeable": false}))
        .unwrap();
    assert_eq!((pr.state.as_str(), pr.conflict), ("open", Some(true)));
    let merged = parse_pr(
        ForgeKind::Github,
        &json!({"number": 4, "state": "closed", "merged": true, "merge_commit_sha": "m", "head": {"sha": "h"}}),
    )
    .unwrap();
    assert_eq!(
        signals_from_observation(&PrObservation { pr: merged, ..Default::default() }),
        vec![PrSignal::Merged { merge_sha: Some("m".into()) }]
    );
    let gl =
        parse_pr(ForgeKind::Gitlab, &json!({"iid": 2, "state": "merged", "merge_commit_sha": "m2", "sha": "h", "has_conflicts": false}))
            .unwrap();
    assert_eq!((gl.state.as_str(), gl.merge_sha.as_deref()), ("merged", Some("m2")));
    let checks = parse_checks(
        ForgeKind::Github,
        "h",
        &json!({"statuses": [{"context": STATUS_CONTEXT, "state": "success"}, {"context": "ci", "state": "failure", "target_url": "x"}]}),
    );
    let o = PrObservation { pr, checks, ..Default::default() };
    let sig = signals_from_observation(&o);
    assert!(sig.iter().all(|s| !matches!(s, PrSignal::Check(c) if c.name == STATUS_CONTEXT)), "our own status is not a check to act on");
    assert!(sig.contains(&PrSignal::Conflict));
    assert!(sig.iter().any(|s| matches!(s, PrSignal::Check(c) if c.name == "ci" && c.state == CheckState::Failure)));
    let reviews = parse_reviews(
        ForgeKind::Gitlab,
        &json!([{"id": 1, "body": "x", "system": true}, {"id": 2, "body": "y", "author": {"username": "a"}}]),
    );
    assert_eq!(reviews.iter().map(|r| r.id).collect::<Vec<_>>(), vec![2], "system notes skipped");
    assert_eq!((pr_poll_delay_ms(60, 0), pr_poll_delay_ms(60, 1), pr_poll_delay_ms(60, 5)), (60_000, 120_000, 1_800_000));
    assert_eq!(pr_poll_delay_ms(60, 50), 1_800_000, "capped at 30 minutes");
    assert_eq!(pr_poll_delay_ms(2, 100), 64_000, "32 × base");
    assert_eq!(pr_poll_delay_ms(3600, 3), 3_600_000, "never below base");
}

#[test]
fn a_pull_request_body_never_carries_a_configured_secret() {
    let mut c = TownConfig::default();
    c.git_auth.github_token = Some("ghp_supersecret123".into());
    c.env_vars.insert("OPENAI_API_KEY".into(), "sk-another-secret".into());
    c.env_vars.insert("LOG_LEVEL".into(), "debug".into());
    let s = redact("used ghp_supersecret123 and sk-another-secret at debug", &c);
    assert_eq!(s, "used [redacted] and [redacted] at debug");
    let body = pr_body("gt-1", "Fix\nit", Some(&s), "nux", Some("https://town/#/x"));
    assert!(body.contains("[gt-1](https://town/#/x): Fix it") && body.contains("used [redacted]"), "{body}");
}
