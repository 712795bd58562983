using System.Text;
using SharpTune.IO;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.IO;

public sealed class LargeSafeTensorTests : IDisposable
{
    private readonly string _root = RepoPaths.NewTempDirectory();

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>One 3 GiB tensor (a sparse file: no disk is used for the zeros) loads whole, bytes past 2 GiB included;
    /// it used to fail with "Arithmetic operation resulted in an overflow".</summary>
    [Fact]
    public void ASingleTensorOfThreeGibLoads()
    {
        const long size = 3L << 30;
        var header = Encoding.UTF8.GetBytes($"{{\"big\":{{\"dtype\":\"U8\",\"shape\":[{size}],\"data_offsets\":[0,{size}]}}}}");
        var path = Path.Combine(_root, "big.safetensors");
        var dataStart = 8 + header.Length;
        using (var stream = new FileStream(path, FileMode.CreateNew))
        {
            stream.Write(BitConverter.GetBytes((long)header.Length));
            stream.Write(header);
            stream.SetLength(dataStart + size);
            foreach (var (offset, value) in Markers)
            {
                stream.Position = dataStart + offset;
                stream.WriteByte(value);
            }
        }

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(size, file.Info("big").ByteLength);
        using var tensor = file.Load("big");
        Assert.Equal(new[] { size }, tensor.shape);
        foreach (var (offset, value) in Markers)
            Assert.Equal(value, tensor[offset].item<byte>());
        foreach (var offset in new[] { 1L, (2L << 30) + 4, (3L << 30) - 2 })
            Assert.Equal(0, tensor[offset].item<byte>());
    }

    private static readonly (long Offset, byte Value)[] Markers = [(0, 1), ((1L << 30) - 1, 2), (1L << 30, 3), ((2L << 30) + 5, 4), ((3L << 30) - 1, 5)];
}
