//! App API reads about people: find them by email, read a profile (the
//! segments a person is in are in [`segments`](super::segments)).
//!
//! Endpoints, from Customer.io's App API reference (`getPeopleEmail`,
//! `getPersonAttributes`): `GET /v1/customers?email=` and
//! `GET /v1/customers/{id}/attributes?id_type=`, 10 requests per second.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::client::client::Client;
use crate::client::identifier::{Identifier, percent_encode};
use crate::client::validate;
use crate::error::Result;

/// A person's identifiers, as a lookup by email or a segment's membership
/// lists them.
///
/// Fields Customer.io adds later are kept in [`extra`](PersonIdentifiers::extra).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersonIdentifiers {
    /// Your id for the person, if they have one.
    #[serde(default, deserialize_with = "string_or_number")]
    pub id: Option<String>,
    /// The person's email address, if set.
    #[serde(default)]
    pub email: Option<String>,
    /// Customer.io's own id for the person.
    #[serde(default)]
    pub cio_id: String,
    /// Any other field of the answer.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl PersonIdentifiers {
    /// The identifier that names this person for sure: their Customer.io id.
    pub fn identifier(&self) -> Identifier {
        Identifier::cio_id(&self.cio_id)
    }
}

/// A person's profile: attributes, when they changed, subscription and
/// devices (`GET /v1/customers/{id}/attributes`).
///
/// Fields Customer.io adds later are kept in [`extra`](PersonProfile::extra).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersonProfile {
    /// Your id for the person, if they have one.
    #[serde(default, deserialize_with = "string_or_number")]
    pub id: Option<String>,
    /// Every identifier the person has.
    #[serde(default)]
    pub identifiers: PersonIdentifiers,
    /// The person's attributes, as identify calls set them.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// When each attribute was last set, in Unix seconds, by attribute name.
    #[serde(default)]
    pub timestamps: Map<String, Value>,
    /// Whether the person unsubscribed.
    #[serde(default)]
    pub unsubscribed: bool,
    /// The person's devices, as Customer.io describes them.
    #[serde(default)]
    pub devices: Vec<Value>,
    /// Any other field of the answer.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Client {
    /// The people whose email address is `email` (`GET /v1/customers?email=`),
    /// on the App limiter; none is an empty list, not an error. Several
    /// people can share an address in a workspace that identifies people by
    /// id.
    ///
    /// ```no_run
    /// use cio_ratelimit::Client;
    ///
    /// let client = Client::builder_without_credentials().app_key("app-api-key").build()?;
    /// for person in client.people_by_email("ada@example.com")? {
    ///     println!("{} {:?}", person.cio_id, person.id);
    /// }
    /// # Ok::<(), cio_ratelimit::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) for an empty or overlong
    /// email; [`Error::MissingCredential`](crate::Error::MissingCredential)
    /// without an App API key; otherwise what the server answered after
    /// retries (see [`Error`](crate::Error)).
    #[doc(alias = "getCustomersByEmail")]
    pub fn people_by_email(&self, email: &str) -> Result<Vec<PersonIdentifiers>> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            results: Vec<PersonIdentifiers>,
        }
        validate::identifier("email", email)?;
        let path = format!("/v1/customers?email={}", percent_encode(email));
        Ok(self.read::<Answer>("people_by_email", path)?.results)
    }

    /// A person's profile (`GET /v1/customers/{id}/attributes`), on the App
    /// limiter. The person may be named by id, email or Customer.io id;
    /// Customer.io accepts an email here only where email is an identifier
    /// of the workspace (otherwise use
    /// [`people_by_email`](Client::people_by_email) first).
    ///
    /// ```no_run
    /// use cio_ratelimit::{Client, Identifier};
    ///
    /// let client = Client::builder_without_credentials().app_key("app-api-key").build()?;
    /// let profile = client.person_attributes(Identifier::cio_id("a3000001"))?;
    /// println!("plan: {}", profile.attributes["plan"]);
    /// # Ok::<(), cio_ratelimit::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Status`](crate::Error::Status) with status 404 when no such
    /// person exists; otherwise as [`people_by_email`](Client::people_by_email).
    #[doc(alias = "getAttributes")]
    pub fn person_attributes(&self, person: impl Into<Identifier>) -> Result<PersonProfile> {
        #[derive(Deserialize)]
        struct Answer {
            customer: PersonProfile,
        }
        let path = person_path(&person.into(), "attributes")?;
        Ok(self.read::<Answer>("person_attributes", path)?.customer)
    }
}

/// `/v1/customers/{value}/{what}?id_type={kind}`: the App API names a person
/// by the bare value and says which kind it is in the query.
pub(crate) fn person_path(person: &Identifier, what: &str) -> Result<String> {
    person.validate()?;
    Ok(format!(
        "/v1/customers/{}/{what}?id_type={}",
        percent_encode(person.value()),
        person.kind()
    ))
}

/// An id Customer.io may write as a string or a number (its examples show
/// both), or null.
pub(crate) fn string_or_number<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(deserializer)? {
        Some(Value::String(text)) => Some(text),
        Some(Value::Number(number)) => Some(number.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_paths_carry_the_identifier_kind() {
        assert_eq!(
            person_path(&Identifier::email("a+b@x.io"), "attributes").unwrap(),
            "/v1/customers/a%2Bb%40x.io/attributes?id_type=email"
        );
        assert_eq!(
            person_path(&Identifier::cio_id("a3"), "segments").unwrap(),
            "/v1/customers/a3/segments?id_type=cio_id"
        );
        assert!(person_path(&Identifier::id(""), "segments").is_err());
    }

    #[test]
    fn ids_may_be_numbers_and_unknown_fields_are_kept() {
        let person: PersonIdentifiers =
            serde_json::from_str(r#"{"id": 2, "email": null, "cio_id": "a3", "phone": "+1"}"#)
                .unwrap();
        assert_eq!(person.id.as_deref(), Some("2"));
        assert_eq!(person.email, None);
        assert_eq!(person.extra["phone"], "+1");
    }
}
