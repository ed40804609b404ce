import pytest

from strongroom.store.crypto import SecretBox, SecretDecryptError, hash_token


def test_roundtrip_and_ciphertext_hides_plaintext():
    box = SecretBox(["k1"])
    token = box.encrypt("shared-secret")
    assert "shared-secret" not in token and box.decrypt(token) == "shared-secret"


def test_rotation_old_key_still_decrypts_and_rotate_moves_to_new_key():
    old = SecretBox(["old"]).encrypt("s3cret")
    both = SecretBox(["new", "old"])
    assert both.decrypt(old) == "s3cret"
    rotated = both.rotate(old)
    assert SecretBox(["new"]).decrypt(rotated) == "s3cret"
    with pytest.raises(SecretDecryptError):
        SecretBox(["new"]).decrypt(old)


def test_wrong_key_or_garbage_is_a_typed_error():
    with pytest.raises(SecretDecryptError):
        SecretBox(["a"]).decrypt(SecretBox(["b"]).encrypt("x"))
    with pytest.raises(SecretDecryptError):
        SecretBox(["a"]).decrypt("not-a-token")


def test_hash_token_is_stable_and_one_way():
    assert hash_token("abc") == hash_token("abc") != hash_token("abd")
    assert "abc" not in hash_token("abc")
