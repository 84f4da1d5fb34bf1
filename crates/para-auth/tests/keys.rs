//! Development keys on disk: what `para init` / `para keys` write, that nothing is ever
//! overwritten, the git-ignore lines, and which public keys the server loads.

use std::path::Path;

use para_auth::keys::{self, KeyError, PUBLIC_KEY_ENV};
use para_auth::tokens::{self, Claims, Verifier};
use para_auth::{PublicKey, load_public_keys};

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn dev_keys_are_written_once_private_and_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(root.join(".gitignore"), "out/\nnode_modules/").unwrap();
    let first = keys::generate_dev_keys(root).unwrap();
    assert_eq!(first.created, vec![first.private_key.clone(), first.public_key.clone()]);
    assert!(first.gitignore_updated);
    assert_eq!(first.private_key, root.join(".para/keys/private.pem"));
    assert_eq!(mode(&first.private_key), 0o600);
    let private = std::fs::read_to_string(&first.private_key).unwrap();
    let public = std::fs::read_to_string(&first.public_key).unwrap();
    assert!(private.starts_with("-----BEGIN PRIVATE KEY-----\n"), "PKCS#8");
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"), "SPKI");
    assert_eq!(PublicKey::from_pem("p", &public).unwrap().bits(), 2048);
    assert_eq!(
        std::fs::read_to_string(root.join(".gitignore")).unwrap(),
        "out/\nnode_modules/\n.para/keys/private.pem\n.para/secret.key\n"
    );

    let again = keys::generate_dev_keys(root).unwrap();
    assert!(again.created.is_empty() && !again.gitignore_updated);
    assert_eq!(std::fs::read_to_string(&first.private_key).unwrap(), private);
    assert_eq!(std::fs::read_to_string(&first.public_key).unwrap(), public);
}

#[test]
fn a_missing_public_key_is_derived_from_the_private_key() {
    let tmp = tempfile::tempdir().unwrap();
    let made = keys::generate_dev_keys(tmp.path()).unwrap();
    let public = std::fs::read_to_string(&made.public_key).unwrap();
    std::fs::remove_file(&made.public_key).unwrap();
    let again = keys::generate_dev_keys(tmp.path()).unwrap();
    assert_eq!(again.created, vec![made.public_key.clone()]);
    assert_eq!(std::fs::read_to_string(&made.public_key).unwrap(), public);
}

#[test]
fn a_public_key_without_its_private_key_is_not_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let made = keys::generate_dev_keys(tmp.path()).unwrap();
    std::fs::remove_file(&made.private_key).unwrap();
    let err = keys::generate_dev_keys(tmp.path()).unwrap_err();
    assert!(matches!(err, KeyError::OrphanPublicKey { .. }), "{err}");
    assert!(err.hint().is_some());
    assert!(made.public_key.exists() && !made.private_key.exists());
}

#[test]
fn public_keys_are_every_pem_in_the_keys_folder_and_the_env_var() {
    let old = tempfile::tempdir().unwrap();
    let new = tempfile::tempdir().unwrap();
    let extra = tempfile::tempdir().unwrap();
    for dir in [&old, &new, &extra] {
        keys::generate_dev_keys(dir.path()).unwrap();
    }
    let root = new.path();
    // Rotation: the old public key stays next to the new pair.
    std::fs::copy(old.path().join(keys::PUBLIC_KEY_FILE), root.join(".para/keys/old.pem")).unwrap();
    std::fs::write(root.join(".para/keys/README.txt"), "not a key").unwrap();
    let loaded = load_public_keys(root).unwrap();
    let origins: Vec<&str> = loaded.iter().map(PublicKey::origin).collect();
    assert_eq!(origins.len(), 2, "{origins:?}: private.pem is skipped");
    assert!(origins[0].ends_with("old.pem") && origins[1].ends_with("public.pem"));

    let env_pem = std::fs::read_to_string(extra.path().join(keys::PUBLIC_KEY_FILE)).unwrap();
    let one_line = env_pem.trim().replace('\n', "\\n");
    let with_env = keys::load_public_keys_with(root, Some(&one_line)).unwrap();
    assert_eq!(with_env.len(), 3);
    assert_eq!(with_env[2].origin(), PUBLIC_KEY_ENV);
    assert_eq!(keys::load_public_keys_with(root, Some("  ")).unwrap().len(), 2);

    // Tokens of all three signers verify.
    let verifier = Verifier::new(with_env, None).unwrap();
    for dir in [&old, &new, &extra] {
        let pem = keys::load_private_key(dir.path()).unwrap();
        let token =
            tokens::sign(&pem, &Claims::new("u", std::time::Duration::from_secs(60))).unwrap();
        assert_eq!(verifier.verify(&token).unwrap().user_id, "u");
    }
    assert_eq!(Verifier::for_project(root, None).unwrap().keys().len(), 2);
}

#[test]
fn bad_public_keys_are_errors_not_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join(keys::KEYS_DIR)).unwrap();
    std::fs::write(
        root.join(".para/keys/broken.pem"),
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let err = load_public_keys(root).unwrap_err();
    assert!(matches!(err, KeyError::NotAPublicKey { .. }), "{err}");
    assert!(err.to_string().contains("broken.pem"));
    assert!(matches!(
        keys::load_public_keys_with(tmp.path(), Some("nope")),
        Err(KeyError::NotAPublicKey { .. })
    ));

    // A 1024-bit RSA key is too small.
    use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
    let small = rsa::PrivateKey::new(&mut getrandom::SysRng, 1024).unwrap();
    let pem = small.to_public_key().to_public_key_pem(LineEnding::LF).unwrap();
    let err = PublicKey::from_pem("small", &pem).unwrap_err();
    assert!(matches!(err, KeyError::TooSmall { bits: 1024, .. }), "{err}");
}

#[test]
fn no_keys_folder_means_no_keys_and_no_private_key() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(
        load_public_keys(tmp.path()).unwrap().is_empty()
            || std::env::var_os(PUBLIC_KEY_ENV).is_some()
    );
    let err = keys::load_private_key(tmp.path()).unwrap_err();
    assert!(matches!(err, KeyError::NoPrivateKey { .. }));
    assert!(err.hint().unwrap().contains("para keys"));
    assert!(
        Verifier::for_project(tmp.path(), None).is_err()
            || std::env::var_os(PUBLIC_KEY_ENV).is_some()
    );
}
