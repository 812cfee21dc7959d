import { renderHtpasswd } from "../../renderers/htpasswd";

// bcryptjs output (cost 4) for fixture passwords; the second with the $2y$ prefix of htpasswd -B.
const HASH_2B = "$2b$04$7Hf/PRj55M/2DjWM5XzVHu0U5.Mbgx7irL/M7TrfgoymTsACLB1Zu";
const HASH_2Y = "$2y$04$O15EF.tuASAyOmDt8wt/1OTLzxyGzoz.7w.wFpP2b.MnN8mgLqxd6";
const HASH_2A = HASH_2B.replace("$2b$", "$2a$");

describe("renderHtpasswd", () => {
  test("renders one name:hash line per entry in the given order", () => {
    expect(
      renderHtpasswd([
        { name: "zoe", hash: HASH_2B },
        { name: "alice", hash: HASH_2Y },
        { name: "ci-bot", hash: HASH_2A },
      ]),
    ).toBe(`zoe:${HASH_2B}\nalice:${HASH_2Y}\nci-bot:${HASH_2A}\n`);
  });

  test("renders nothing for no entries", () => {
    expect(renderHtpasswd([])).toBe("");
  });

  test("fails when a name contains a colon", () => {
    expect(() => renderHtpasswd([{ name: "a:b", hash: HASH_2B }])).toThrow(
      'entries[0].name: "a:b" must be non-empty without ":" or whitespace',
    );
  });

  test("fails when a name starts with '#', which distribution's htpasswd reader skips as a comment (issue 20)", () => {
    expect(() => renderHtpasswd([{ name: "#ops", hash: HASH_2B }])).toThrow('entries[0].name: "#ops" must be non-empty without ":" or whitespace, not starting with "#"');
  });

  test("fails when a name contains whitespace or is empty", () => {
    expect(() => renderHtpasswd([{ name: "a b", hash: HASH_2B }])).toThrow('entries[0].name: "a b"');
    expect(() => renderHtpasswd([{ name: "tab\t", hash: HASH_2B }])).toThrow('entries[0].name: "tab\\t"');
    expect(() => renderHtpasswd([{ name: "", hash: HASH_2B }])).toThrow('entries[0].name: ""');
  });

  test("fails when a hash is not bcrypt", () => {
    for (const hash of ["$apr1$abcdefgh$0123456789abcdefghijkl", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "plain", `${HASH_2B}x`, "$2x$04$" + HASH_2B.slice(7)]) {
      expect(() => renderHtpasswd([{ name: "alice", hash }])).toThrow(
        'entries[0].hash for "alice" is not a bcrypt hash ($2a$, $2b$ or $2y$); the registry accepts bcrypt only',
      );
    }
  });

  test("fails when a name appears twice", () => {
    expect(() =>
      renderHtpasswd([
        { name: "alice", hash: HASH_2B },
        { name: "alice", hash: HASH_2Y },
      ]),
    ).toThrow('entries[1].name: "alice" appears more than once; keep one entry per user');
  });

  test("reports every problem at once", () => {
    expect(() =>
      renderHtpasswd([
        { name: "ok", hash: HASH_2B },
        { name: "bad:name", hash: HASH_2B },
        { name: "bob", hash: "md5" },
      ]),
    ).toThrow(
      [
        "invalid htpasswd entries:",
        'entries[1].name: "bad:name" must be non-empty without ":" or whitespace, not starting with "#"',
        'entries[2].hash for "bob" is not a bcrypt hash ($2a$, $2b$ or $2y$); the registry accepts bcrypt only',
      ].join("\n"),
    );
  });
});
