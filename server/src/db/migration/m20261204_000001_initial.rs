use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    Slug,
    DisplayName,
    ScimEnabled,
    Roles,
    DefaultRole,
    UserCount,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ScimTokens {
    Table,
    Id,
    AccountId,
    TokenHash,
    Prefix,
    Description,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    AccountId,
    Seq,
    UserName,
    UserNameKey,
    ExternalId,
    GivenName,
    GivenNameKey,
    FamilyName,
    FamilyNameKey,
    Email,
    EmailKey,
    PhoneNumber,
    Timezone,
    Role,
    RoleType,
    Active,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    AccountId,
    Actor,
    Action,
    TargetType,
    TargetId,
    ChangedFields,
    IgnoredFields,
    RequestId,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Accounts::Table)
                    .col(uuid(Accounts::Id).primary_key())
                    .col(string(Accounts::Slug).unique_key())
                    .col(string(Accounts::DisplayName))
                    .col(boolean(Accounts::ScimEnabled))
                    .col(string(Accounts::Roles))
                    .col(string(Accounts::DefaultRole))
                    .col(big_integer(Accounts::UserCount))
                    .col(big_integer(Accounts::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ScimTokens::Table)
                    .col(uuid(ScimTokens::Id).primary_key())
                    .col(uuid(ScimTokens::AccountId))
                    .col(string(ScimTokens::TokenHash).unique_key())
                    .col(string(ScimTokens::Prefix))
                    .col(string(ScimTokens::Description))
                    .col(big_integer(ScimTokens::CreatedAt))
                    .col(big_integer_null(ScimTokens::ExpiresAt))
                    .col(big_integer_null(ScimTokens::RevokedAt))
                    .col(big_integer_null(ScimTokens::LastUsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ScimTokens::Table, ScimTokens::AccountId)
                            .to(Accounts::Table, Accounts::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("scim_tokens_account")
                    .table(ScimTokens::Table)
                    .col(ScimTokens::AccountId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(uuid(Users::Id).primary_key())
                    .col(uuid(Users::AccountId))
                    .col(big_integer(Users::Seq))
                    .col(string(Users::UserName))
                    .col(string(Users::UserNameKey))
                    .col(string_null(Users::ExternalId))
                    .col(string_null(Users::GivenName))
                    .col(string_null(Users::GivenNameKey))
                    .col(string_null(Users::FamilyName))
                    .col(string_null(Users::FamilyNameKey))
                    .col(string_null(Users::Email))
                    .col(string_null(Users::EmailKey))
                    .col(string_null(Users::PhoneNumber))
                    .col(string_null(Users::Timezone))
                    .col(string(Users::Role))
                    .col(string_null(Users::RoleType))
                    .col(boolean(Users::Active))
                    .col(big_integer(Users::CreatedAt))
                    .col(big_integer(Users::UpdatedAt))
                    .col(big_integer(Users::Version))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Users::Table, Users::AccountId)
                            .to(Accounts::Table, Accounts::Id),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, cols, unique) in [
            (
                "users_account_user_name",
                vec![Users::AccountId, Users::UserNameKey],
                true,
            ),
            (
                "users_account_seq",
                vec![Users::AccountId, Users::Seq],
                true,
            ),
            (
                "users_account_email",
                vec![Users::AccountId, Users::EmailKey],
                false,
            ),
            (
                "users_account_external_id",
                vec![Users::AccountId, Users::ExternalId],
                false,
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(Users::Table);
            for col in cols {
                index.col(col);
            }
            if unique {
                index.unique();
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(big_pk_auto(AuditEvents::Id))
                    .col(uuid_null(AuditEvents::AccountId))
                    .col(string(AuditEvents::Actor))
                    .col(string(AuditEvents::Action))
                    .col(string(AuditEvents::TargetType))
                    .col(string(AuditEvents::TargetId))
                    .col(string(AuditEvents::ChangedFields))
                    .col(string(AuditEvents::IgnoredFields))
                    .col(string_null(AuditEvents::RequestId))
                    .col(big_integer(AuditEvents::At))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_events_account")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::AccountId)
                    .col(AuditEvents::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration("migrations are forward-only".into()))
    }
}
