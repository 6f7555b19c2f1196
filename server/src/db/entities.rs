//! SeaORM entities. Times are microseconds since the Unix epoch (portable and
//! exact on SQLite and PostgreSQL alike); `*_key` columns hold case-folded
//! keys computed in Rust (`crate::keys::fold`).

pub mod account {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "accounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(unique)]
        pub slug: String,
        pub display_name: String,
        pub scim_enabled: bool,
        /// Comma-separated; role names are `[a-z0-9_-]+`.
        pub roles: String,
        pub default_role: String,
        /// Users ever created; also the last per-account user sequence number.
        pub user_count: i64,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl Model {
        pub fn role_list(&self) -> Vec<String> {
            self.roles
                .split(',')
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect()
        }
    }
}

pub mod scim_token {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "scim_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub account_id: Uuid,
        /// Hex SHA-256 of the secret; the secret itself is never stored.
        #[sea_orm(unique)]
        pub token_hash: String,
        pub prefix: String,
        pub description: String,
        pub created_at: i64,
        pub expires_at: Option<i64>,
        pub revoked_at: Option<i64>,
        pub last_used_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl Model {
        pub fn is_live(&self, now: i64) -> bool {
            self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
        }
    }
}

pub mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub account_id: Uuid,
        /// Dense per-account sequence number (1, 2, 3, …): stable order and
        /// cheap deep pages, since users are never deleted.
        pub seq: i64,
        pub user_name: String,
        pub user_name_key: String,
        pub external_id: Option<String>,
        pub given_name: Option<String>,
        pub given_name_key: Option<String>,
        pub family_name: Option<String>,
        pub family_name_key: Option<String>,
        pub email: Option<String>,
        pub email_key: Option<String>,
        pub phone_number: Option<String>,
        pub timezone: Option<String>,
        pub role: String,
        pub role_type: Option<String>,
        pub active: bool,
        pub created_at: i64,
        pub updated_at: i64,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod audit_event {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub account_id: Option<Uuid>,
        pub actor: String,
        pub action: String,
        pub target_type: String,
        pub target_id: String,
        /// Comma-separated field names.
        pub changed_fields: String,
        /// Comma-separated field names whose submitted values were ignored.
        pub ignored_fields: String,
        pub request_id: Option<String>,
        pub at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
