using SharpTune.StagedPipeline;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.StagedPipeline;

public class ExportTests
{
    private static string SampleFolder()
    {
        var dir = RepoPaths.NewTempDirectory();
        File.WriteAllText(Path.Combine(dir, "config.json"), """{"model_type": "llama"}""");
        Directory.CreateDirectory(Path.Combine(dir, "adapter"));
        File.WriteAllBytes(Path.Combine(dir, "adapter", "adapter_model.safetensors"), Enumerable.Range(0, 5000).Select(i => (byte)(i * 7)).ToArray());
        File.WriteAllText(Path.Combine(dir, ".stage-complete.json"), "{}");
        return dir;
    }

    private static void AssertSameFiles(string expected, string actual)
    {
        var files = Directory.EnumerateFiles(expected, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(expected, f)).Where(f => !f.StartsWith('.')).Order().ToList();
        Assert.Equal(files, Directory.EnumerateFiles(actual, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(actual, f)).Order());
        foreach (var file in files)
            Assert.Equal(File.ReadAllBytes(Path.Combine(expected, file)), File.ReadAllBytes(Path.Combine(actual, file)));
    }

    [Fact]
    public void ArchiveRoundTripsWithChecksums()
    {
        var source = SampleFolder();
        var zip = Path.Combine(RepoPaths.NewTempDirectory(), "export.zip");
        var digest = ExportArchive.Create(source, zip);
        Assert.Equal(digest, ExportArchive.FileDigest(zip));
        Assert.StartsWith(digest, File.ReadAllText(zip + ".sha256"));
        var target = Path.Combine(RepoPaths.NewTempDirectory(), "restored");
        ExportArchive.Extract(zip, target);
        AssertSameFiles(source, target);
    }

    [Fact]
    public void CorruptedArchiveIsRefused()
    {
        var zip = Path.Combine(RepoPaths.NewTempDirectory(), "export.zip");
        ExportArchive.Create(SampleFolder(), zip);
        var bytes = File.ReadAllBytes(zip);
        bytes[100] ^= 0xFF;
        File.WriteAllBytes(zip, bytes);
        var target = Path.Combine(RepoPaths.NewTempDirectory(), "restored");
        var error = Assert.Throws<InvalidDataException>(() => ExportArchive.Extract(zip, target));
        Assert.Contains("does not match", error.Message);
        Assert.False(Directory.Exists(target));
        // Without the sidecar the per-entry sums (or the zip's own CRC) still catch it.
        File.Delete(zip + ".sha256");
        Assert.ThrowsAny<InvalidDataException>(() => ExportArchive.Extract(zip, target));
        Assert.False(Directory.Exists(target));
    }

    [RequiresNodeFact]
    public async Task S3UploadAndDownloadRoundTripAgainstALocalServer()
    {
        using var server = new S3rverServer();
        var settings = new S3Settings("sharptune-test", "runs/one", server.Endpoint, "us-east-1", ForcePathStyle: true);
        using var storage = new S3Storage(settings, new S3Credentials(S3rverServer.AccessKey, S3rverServer.SecretKey));
        await storage.EnsureBucketAsync();
        var source = SampleFolder();
        var keys = await storage.UploadDirectoryAsync(source, "export");
        Assert.Contains("runs/one/export/adapter/adapter_model.safetensors", keys);
        var target = Path.Combine(RepoPaths.NewTempDirectory(), "downloaded");
        Assert.Equal(keys.Count, await storage.DownloadDirectoryAsync("export", target));
        Assert.Equal(File.ReadAllBytes(Path.Combine(source, "adapter", "adapter_model.safetensors")),
            File.ReadAllBytes(Path.Combine(target, "adapter", "adapter_model.safetensors")));
        await Assert.ThrowsAsync<FileNotFoundException>(() => storage.DownloadDirectoryAsync("absent", Path.Combine(RepoPaths.NewTempDirectory(), "x")));
    }
}
