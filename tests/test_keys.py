from ec2gw.auth.keys import KeyCipher, new_access_key_id, new_secret, uid_of


def test_key_ids_carry_the_owner():
    for uid in (0, 1, 7, 2**31 - 1):
        key_id = new_access_key_id(uid)
        assert len(key_id) == 20 and key_id.startswith("AKIA") and key_id.isalnum()
        assert uid_of(key_id) == uid
    assert new_access_key_id(3) != new_access_key_id(3)
    for junk in ("AKIDEXAMPLE", "AKIA" + "!" * 16, "", "ASIA" + "A" * 16):
        assert uid_of(junk) is None


def test_secrets_are_sealed_to_their_key_id():
    cipher = KeyCipher("gateway-secret")
    secret = new_secret()
    assert len(secret) == 40
    stored = cipher.encrypt(secret, "AKIAAAAAAAAAAAAAAAAA")
    assert secret not in stored
    assert cipher.decrypt(stored, "AKIAAAAAAAAAAAAAAAAA") == secret
    assert cipher.decrypt(stored, "AKIAAAAAAAAAAAAAAAAB") is None
    assert KeyCipher("other").decrypt(stored, "AKIAAAAAAAAAAAAAAAAA") is None
    assert cipher.decrypt("v1:garbage", "AKIAAAAAAAAAAAAAAAAA") is None
    assert cipher.decrypt("plain", "AKIAAAAAAAAAAAAAAAAA") is None
