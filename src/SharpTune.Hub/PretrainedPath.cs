namespace SharpTune.Hub;

/// <summary>
/// What every <c>FromPretrained</c> does with the name it is given, as transformers does: an existing local file or
/// folder always wins; otherwise a Hub id (<c>org/name</c> or <c>org/name@revision</c>) is found in the Hugging Face
/// cache or downloaded into it (<see cref="HubOptions.FromEnvironment"/> settings unless others are given), and the
/// snapshot folder is returned. Anything else comes back unchanged, for the caller's own "not found" error.
/// </summary>
public static class PretrainedPath
{
    public static string Resolve(string pathOrId, HubFileSelection? files = null, HubOptions? options = null,
        IProgress<HubDownloadProgress>? progress = null, CancellationToken cancellationToken = default) =>
        ResolveAsync(pathOrId, files, options, progress, cancellationToken).GetAwaiter().GetResult();

    public static async Task<string> ResolveAsync(string pathOrId, HubFileSelection? files = null, HubOptions? options = null,
        IProgress<HubDownloadProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pathOrId);
        if (!IsHubId(pathOrId))
            return pathOrId;
        var reference = RepoReference.Parse(pathOrId);
        using var client = new HubClient(options ?? HubOptions.FromEnvironment());
        try
        {
            return await client.DownloadSnapshotAsync(reference.RepoId, reference.Revision, files ?? HubFileSelection.Model, progress, cancellationToken);
        }
        catch (HubNotFoundException e)
        {
            throw new HubNotFoundException($"'{pathOrId}' is not a local folder, and on the Hub: {e.Message}");
        }
    }

    /// <summary>True when <paramref name="pathOrId"/> names nothing on disk and has the shape of a Hub id.</summary>
    public static bool IsHubId(string pathOrId) =>
        !File.Exists(pathOrId) && !Directory.Exists(pathOrId) && RepoReference.TryParse(pathOrId, out _);
}
