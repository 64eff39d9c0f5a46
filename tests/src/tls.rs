//! A private CA and a server certificate it issued, made at run time (rcgen on ring), for the
//! tests that speak TLS to `wasmbatch serve --tls-cert/--tls-key`.

/// A CA and a certificate it issued for `localhost` and 127.0.0.1, as PEM files in `dir`:
/// (ca.pem, cert.pem, key.pem).
pub fn certificates(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("making the test certificates");
    let mut ca_params =
        rcgen::CertificateParams::new(Vec::<String>::new()).expect("making the test certificates");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "wasmbatch test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params
        .self_signed(&ca_key)
        .expect("making the test certificates");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("making the test certificates");
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("making the test certificates");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let cert = params
        .signed_by(&key, &issuer)
        .expect("making the test certificates");
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).expect("making the test certificates");
    std::fs::write(&paths.1, cert.pem()).expect("making the test certificates");
    std::fs::write(&paths.2, key.serialize_pem()).expect("making the test certificates");
    paths
}
