using System.Text.RegularExpressions;

namespace SharpTune.Hub;

/// <summary>A model named as on the Hub: <c>org/name</c>, optionally <c>@revision</c> (a branch, tag or commit).</summary>
public sealed partial record RepoReference(string RepoId, string Revision = RepoReference.DefaultRevision)
{
    public const string DefaultRevision = "main";

    /// <summary>The cache folder name huggingface_hub uses: <c>models--org--name</c>.</summary>
    public string FolderName => CacheFolderName(RepoId);

    public override string ToString() => Revision == DefaultRevision ? RepoId : $"{RepoId}@{Revision}";

    public static string CacheFolderName(string repoId) => "models--" + repoId.Replace("/", "--", StringComparison.Ordinal);

    /// <summary>Parses <c>org/name[@revision]</c>; false for anything else (a path such as <c>./x</c>, <c>/x</c>,
    /// <c>a/b/c</c>, <c>~/x</c>).</summary>
    public static bool TryParse(string? text, out RepoReference reference)
    {
        reference = null!;
        if (string.IsNullOrWhiteSpace(text))
            return false;
        var at = text.IndexOf('@');
        var id = at < 0 ? text : text[..at];
        var revision = at < 0 ? DefaultRevision : text[(at + 1)..];
        if (!RepoIdPattern().IsMatch(id) || id.Contains("--", StringComparison.Ordinal) || id.Contains("..", StringComparison.Ordinal)
            || revision.Length == 0 || revision.Any(char.IsWhiteSpace) || revision.Contains("..", StringComparison.Ordinal))
            return false;
        reference = new RepoReference(id, revision);
        return true;
    }

    public static RepoReference Parse(string text) =>
        TryParse(text, out var reference) ? reference : throw new ArgumentException($"'{text}' is not a Hub model id (org/name or org/name@revision)");

    /// <summary>True for a full 40-character commit hash (a revision that can never move).</summary>
    public static bool IsCommitHash(string revision) => CommitPattern().IsMatch(revision);

    // The Hub's rule for names: letters, digits, '-', '_', '.', at most 96 characters, not starting or ending with '-' or '.'.
    [GeneratedRegex(@"^[A-Za-z0-9_](?:[A-Za-z0-9_.\-]{0,94}[A-Za-z0-9_])?/[A-Za-z0-9_](?:[A-Za-z0-9_.\-]{0,94}[A-Za-z0-9_])?$")]
    private static partial Regex RepoIdPattern();

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitPattern();
}
