//! Router reload on SIGHUP (issue 2's lifecycle, SEAMS process contract): a changed config
//! file takes effect without a restart; a broken one is refused and the running config keeps
//! serving.

use std::time::Duration;

use cdn_tests::fleet::Fleet;
use cdn_tests::harness::dns::hickory_proto::op::ResponseCode;
use cdn_tests::harness::dns::hickory_proto::rr::RecordType;
use cdn_tests::harness::dns::{self, DnsQuery};
use cdn_tests::harness::{eventually, Signal};

const NAME: &str = "reloaded.cdn.example.test";

#[test]
fn sighup_reloads_the_config_and_a_bad_one_is_refused() {
    Fleet::builder().only_regions(&["us-east"]).run(|fleet| {
        let dns_addr = fleet.router_dns();
        let q = DnsQuery::new(NAME, RecordType::A);
        dns::expect_rcode(&q.udp(dns_addr)?, ResponseCode::NXDomain)?;

        fleet.rewrite_router_config(
            0,
            "[[zones.records]]\nname = \"reloaded\"\ntype = \"A\"\ndata = [\"192.0.2.7\"]\n",
        )?;
        fleet.signal_router(0, Signal::HUP)?;
        eventually("the new record is served", Duration::from_secs(5), || {
            let m = q.udp(dns_addr)?;
            anyhow::ensure!(
                dns::a_records(&m) == ["192.0.2.7".parse::<std::net::Ipv4Addr>()?],
                "{m:?}"
            );
            Ok(())
        })?;

        // A broken file: refused, logged, and the last good config keeps serving.
        fleet.rewrite_router_config(
            0,
            "[[zones.records]]\nname = \"bad\"\ntype = \"NOPE\"\ndata = [\"x\"]\n",
        )?;
        fleet.signal_router(0, Signal::HUP)?;
        let router = fleet.router(0).process().expect("router running");
        router.wait_for_line("NOPE", Duration::from_secs(5))?;
        let m = q.udp(dns_addr)?;
        assert_eq!(
            dns::a_records(&m),
            ["192.0.2.7".parse::<std::net::Ipv4Addr>()?]
        );
        assert_eq!(
            fleet.resolve("8.8.8.0/24")?,
            vec![fleet.edge("us-east").ip()],
            "routing unaffected"
        );
        Ok(())
    });
}
