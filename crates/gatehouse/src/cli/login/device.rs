//! `gatehouse login --device`: the device authorization grant (RFC 8628), with PKCE.

use std::time::Duration;

use gatehouse_oidc::http::HttpError;
use gatehouse_oidc::token::{self as oidc_token, DevicePoll, PollEnd};

use crate::cli::error::CliError;
use crate::cli::net::{IDP, Net};
use crate::cli::spinner::Spinner;

use super::SignIn;
use super::signin::{
    Target, oidc_context, oidc_entry, parameters, random_secrets, scopes, signed_in, token_type,
};

/// The device authorization grant (RFC 8628). Returns the entry and the server's settings
/// to store.
pub async fn device(net: &Net, target: &Target, timeout: Duration) -> Result<SignIn, CliError> {
    let (oidc, d, pin) = oidc_context(net, target).await?;
    let params = parameters(&oidc, &target.params)?;
    let scopes = scopes(&oidc, &d, target.offline_access).join(" ");
    let Some(endpoint) = d.device_authorization_endpoint.clone() else {
        return Err(CliError::Usage {
            reason: format!("the identity provider {} offers no device flow", d.issuer),
            hint: format!("sign in with the browser: {}", target.command("--sso")),
        });
    };
    let secrets = random_secrets()?;
    let challenge = secrets.code_challenge();
    let mut form: Vec<(&str, &str)> = vec![
        ("scope", &scopes),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    form.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let client = net.token_client(&oidc.cli_client_id);
    let dc = client
        .device_authorization(&endpoint, &form)
        .await
        .map_err(|e| Net::error(IDP, e))?;
    eprintln!("To sign in to {}, open", target.server);
    eprintln!(
        "  {}",
        dc.verification_uri_complete
            .as_deref()
            .unwrap_or(&dc.verification_uri)
    );
    eprintln!("and enter the code {}", dc.user_code);
    let lifetime = Duration::from_secs(dc.expires_in.unwrap_or(600)).min(timeout);
    let interval = Duration::from_secs(dc.interval.unwrap_or(5).max(1));
    let command = target.command("--device");
    let spinner = Spinner::start("waiting for the sign-in on the other device...".to_owned());
    let tokens = poll_device(interval, lifetime, &command, || async {
        client
            .poll_device_once(&d.token_endpoint, &dc, &secrets.verifier)
            .await
            .map_err(|e| match e {
                HttpError::Transport { url, source } => CliError::Unreachable {
                    what: IDP,
                    url,
                    source: source.without_url(),
                    hint: "check the network, then run the login again".to_owned(),
                },
                HttpError::Decode { url, source } => CliError::BadAnswer {
                    what: IDP,
                    url,
                    reason: format!("{:?} error", source.classify()),
                },
                e => Net::error(IDP, e),
            })
    })
    .await?;
    let signed_in = signed_in(
        net,
        &d,
        &oidc.cli_client_id,
        token_type(target, &oidc),
        tokens,
        None,
    )
    .await?;
    drop(spinner);
    Ok(oidc_entry(target, &oidc, params, signed_in, command, pin))
}

/// Polls the token endpoint as RFC 8628 section 3.5 asks ([`oidc_token::poll_device`]), and
/// says why it stopped in the CLI's words.
async fn poll_device<T, F, Fut>(
    interval: Duration,
    lifetime: Duration,
    command: &str,
    poll: F,
) -> Result<T, CliError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<DevicePoll<T>, CliError>>,
{
    oidc_token::poll_device(interval, lifetime, poll)
        .await
        .map_err(|end| match end {
            PollEnd::Failed(e) => e,
            PollEnd::Expired => CliError::Login {
                reason: "the device code expired before the sign-in was completed".to_owned(),
                hint: format!("run `{command}` again and finish in time"),
            },
            PollEnd::Refused {
                status,
                error,
                description,
            } => CliError::Login {
                reason: match error.as_str() {
                    "access_denied" => "the sign-in was denied".to_owned(),
                    "expired_token" => "the device code expired".to_owned(),
                    "" => format!("the identity provider answered HTTP {status}"),
                    o => format!(
                        "the identity provider answered {o}{}",
                        description
                            .as_deref()
                            .map(|d| format!(" ({d})"))
                            .unwrap_or_default()
                    ),
                },
                hint: format!("run `{command}` again"),
            },
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn refused(error: &str) -> DevicePoll<&'static str> {
        DevicePoll::Refused {
            status: 400,
            error: error.to_owned(),
            description: None,
        }
    }

    /// Runs `poll_device` (in paused tokio time) against a scripted token endpoint; returns
    /// the result and the seconds between the start and each poll.
    async fn device_script(
        answers: Vec<DevicePoll<&'static str>>,
        lifetime: u64,
    ) -> (Result<&'static str, CliError>, Vec<u64>) {
        let start = tokio::time::Instant::now();
        let answers = std::cell::RefCell::new(answers.into_iter());
        let times = std::cell::RefCell::new(Vec::new());
        let result = poll_device(
            Duration::from_secs(5),
            Duration::from_secs(lifetime),
            "gatehouse login --device https://gh",
            || {
                times.borrow_mut().push(start.elapsed().as_secs());
                let next = answers.borrow_mut().next().expect("no poll after the end");
                async move { Ok(next) }
            },
        )
        .await;
        (result, times.into_inner())
    }

    #[tokio::test(start_paused = true)]
    async fn device_polling_waits_the_interval_and_slows_down_for_good() {
        let (result, times) = device_script(
            vec![
                refused("authorization_pending"),
                refused("slow_down"),
                refused("authorization_pending"),
                refused("slow_down"),
                DevicePoll::Done("tokens"),
            ],
            600,
        )
        .await;
        assert_eq!(result.unwrap(), "tokens");
        // 5 s, then 5 s; slow_down: 10 s from then on; another: 15 s.
        assert_eq!(times, vec![5, 10, 20, 30, 45]);
    }

    #[tokio::test(start_paused = true)]
    async fn device_polling_stops_on_denial_and_at_the_deadline() {
        let (result, times) = device_script(vec![refused("access_denied")], 600).await;
        let err = result.unwrap_err();
        assert!(err.to_string().contains("the sign-in was denied"), "{err}");
        assert_eq!(times, vec![5]);

        let (result, times) = device_script(
            vec![refused("authorization_pending"), refused("slow_down")],
            19,
        )
        .await;
        let err = result.unwrap_err();
        assert!(
            err.to_string().contains("the device code expired before"),
            "{err}"
        );
        // The next poll (at 20 s, after slow_down's 10 s interval) would be past the
        // deadline (19 s): none is made.
        assert_eq!(times, vec![5, 10]);

        let (result, _) = device_script(
            vec![DevicePoll::Refused {
                status: 400,
                error: "invalid_grant".to_owned(),
                description: Some("bad code".to_owned()),
            }],
            600,
        )
        .await;
        let err = result.unwrap_err();
        assert!(
            err.to_string()
                .contains("the identity provider answered invalid_grant (bad code)"),
            "{err}"
        );
    }
}
