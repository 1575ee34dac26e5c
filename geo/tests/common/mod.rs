//! MaxMind DB fixtures built with mmdb-writer: City-shaped, Country-shaped and ASN-shaped
//! records (never a downloaded database).
#![allow(dead_code)]

use std::path::Path;

use ipnet::IpNet;
use mmdb_writer::{IpVersion, Value, Writer};

pub fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// A GeoIP2-City-shaped record.
pub fn city_record(lat: f64, lon: f64, country: &str, continent: &str, city: &str) -> Value {
    Value::map([
        (
            "city",
            Value::map([
                ("geoname_id", Value::from(1u32)),
                (
                    "names",
                    Value::map([("en", Value::from(city)), ("de", Value::from(city))]),
                ),
            ]),
        ),
        (
            "continent",
            Value::map([
                ("code", Value::from(continent)),
                ("geoname_id", Value::from(2u32)),
            ]),
        ),
        (
            "country",
            Value::map([
                ("iso_code", Value::from(country)),
                ("geoname_id", Value::from(3u32)),
                ("names", Value::map([("en", Value::from(country))])),
            ]),
        ),
        (
            "location",
            Value::map([
                ("accuracy_radius", Value::from(20u16)),
                ("latitude", Value::from(lat)),
                ("longitude", Value::from(lon)),
                ("time_zone", Value::from("Etc/UTC")),
            ]),
        ),
        (
            "registered_country",
            Value::map([("iso_code", Value::from(country))]),
        ),
    ])
}

/// A GeoIP2-Country-shaped record (no coordinates).
pub fn country_record(country: &str, continent: &str) -> Value {
    Value::map([
        ("continent", Value::map([("code", Value::from(continent))])),
        (
            "country",
            Value::map([
                ("iso_code", Value::from(country)),
                ("names", Value::map([("en", Value::from(country))])),
            ]),
        ),
    ])
}

/// City-type database:
/// * 81.2.69.0/24 London GB; 81.2.70.0/23 Manchester GB, except 81.2.71.16/28 Liverpool
///   (a network longer than the /24 cache block)
/// * 1.0.16.0/20 Tokyo JP
/// * 2001:db8::/32 Ashburn US
/// * 192.0.2.0/24 country JP only (no coordinates) → centroid
/// * 198.51.100.0/24 continent OC only → continent centroid
/// * 203.0.113.0/24 a record with no location data at all
pub fn city_db() -> Vec<u8> {
    let mut w = Writer::new("Test-City");
    w.insert_value(
        net("81.2.69.0/24"),
        city_record(51.51, -0.09, "GB", "EU", "London"),
    )
    .unwrap();
    w.insert_value(
        net("81.2.70.0/23"),
        city_record(53.48, -2.24, "GB", "EU", "Manchester"),
    )
    .unwrap();
    w.insert_value(
        net("81.2.71.16/28"),
        city_record(53.41, -2.98, "GB", "EU", "Liverpool"),
    )
    .unwrap();
    w.insert_value(
        net("1.0.16.0/20"),
        city_record(35.69, 139.69, "JP", "AS", "Tokyo"),
    )
    .unwrap();
    w.insert_value(
        net("2001:db8::/32"),
        city_record(39.04, -77.49, "US", "NA", "Ashburn"),
    )
    .unwrap();
    w.insert_value(net("192.0.2.0/24"), country_record("JP", "AS"))
        .unwrap();
    w.insert_value(
        net("198.51.100.0/24"),
        Value::map([("continent", Value::map([("code", Value::from("OC"))]))]),
    )
    .unwrap();
    w.insert_value(
        net("203.0.113.0/24"),
        Value::map([("note", Value::from("nothing"))]),
    )
    .unwrap();
    w.to_bytes().unwrap()
}

/// Country-type database: 81.2.69.0/24 GB, 1.0.16.0/20 JP, 2001:db8::/32 US.
pub fn country_db() -> Vec<u8> {
    let mut w = Writer::new("Test-Country");
    w.insert_value(net("81.2.69.0/24"), country_record("GB", "EU"))
        .unwrap();
    w.insert_value(net("1.0.16.0/20"), country_record("JP", "AS"))
        .unwrap();
    w.insert_value(net("2001:db8::/32"), country_record("US", "NA"))
        .unwrap();
    w.to_bytes().unwrap()
}

/// An IPv4-only City database: 81.2.69.0/24 London.
pub fn city_db_v4_only() -> Vec<u8> {
    let mut w = Writer::builder("Test-City-V4")
        .ip_version(IpVersion::V4)
        .build();
    w.insert_value(
        net("81.2.69.0/24"),
        city_record(51.51, -0.09, "GB", "EU", "London"),
    )
    .unwrap();
    w.to_bytes().unwrap()
}

/// An ASN-type database: valid MaxMind DB, no location data.
pub fn asn_db() -> Vec<u8> {
    let mut w = Writer::new("Test-ASN");
    w.insert_value(
        net("81.2.69.0/24"),
        Value::map([
            ("autonomous_system_number", Value::from(64_512u32)),
            ("autonomous_system_organization", Value::from("Example")),
        ]),
    )
    .unwrap();
    w.to_bytes().unwrap()
}

/// Write `bytes` to `path` via a temporary name and a rename (how operators should replace it).
pub fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
