using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;

namespace SharpTune.Engine;

/// <summary>Thrown when libtorch or TorchSharp's native library cannot be loaded; the message says why and what to do.</summary>
public sealed class LibTorchLoadException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The libtorch build the process runs on, as <c>sharptune info</c> reports it.</summary>
/// <param name="Build"><c>CPU-only</c>, or <c>CUDA x.y</c> (the CUDA runtime it was built with).</param>
/// <param name="Directory">Where libtorch was loaded from, when known.</param>
/// <param name="CudaUnavailableReason">Why CUDA cannot be used, or null when it can.</param>
public sealed record LibTorchBuildInfo(string Build, string? Directory, string? CudaUnavailableReason);

/// <summary>
/// Loads the native engine with clear errors. SharpTune references only the managed TorchSharp package; the app
/// supplies libtorch: the package <c>TorchSharp-cpu</c>, <c>TorchSharp-cuda-linux</c> or <c>TorchSharp-cuda-windows</c>,
/// or an existing libtorch 2.10 (such as a PyTorch wheel's <c>torch/lib</c>) named by the environment variable
/// <see cref="LibTorchDirectoryVariable"/>, loaded as soon as SharpTune's assembly is.
/// </summary>
public static class LibTorch
{
    /// <summary>Folder of an existing libtorch to use instead of a TorchSharp-cpu/cuda package.</summary>
    public const string LibTorchDirectoryVariable = "SHARPTUNE_LIBTORCH";

    // Dependency order: each library's needs are loaded before it, so the loader finds them by soname.
    private static readonly string[] LibTorchLibraries = ["c10", "c10_cuda", "torch_cpu", "torch_cuda", "torch"];
    private static readonly Lazy<LibTorchLoadException?> LoadFailure = new(Load);

    [ModuleInitializer]
    [SuppressMessage("Usage", "CA2255", Justification = "libtorch from SHARPTUNE_LIBTORCH must be loaded before the first TorchSharp call, which may come from any SharpTune type.")]
    internal static void PreloadFromEnvironment()
    {
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(LibTorchDirectoryVariable)))
            _ = LoadFailure.Value;
    }

    /// <summary>Makes sure libtorch and libLibTorchSharp are loaded; throws <see cref="LibTorchLoadException"/> (one
    /// message: the reason and the fix) when they cannot be. Cheap after the first call.</summary>
    public static void EnsureLoaded()
    {
        if (LoadFailure.Value is { } failure)
            throw new LibTorchLoadException(failure.Message, failure.InnerException);
    }

    private static LibTorchLoadException? Load()
    {
        if (Environment.GetEnvironmentVariable(LibTorchDirectoryVariable) is { Length: > 0 } directory)
        {
            if (!System.IO.Directory.Exists(directory))
                return new LibTorchLoadException($"{LibTorchDirectoryVariable}={directory} is not a folder: point it at a libtorch 2.10 lib folder (e.g. a PyTorch wheel's torch/lib) or unset it");
            foreach (var name in LibTorchLibraries)
            {
                var path = Path.Combine(directory, LibraryFileName(name));
                if (!File.Exists(path))
                    continue;
                try
                {
                    NativeLibrary.Load(path);
                }
                catch (DllNotFoundException exception)
                {
                    return new LibTorchLoadException($"{LibTorchDirectoryVariable}: {path} does not load ({FirstReason(exception.Message)})", exception);
                }
            }
            if (!File.Exists(Path.Combine(directory, LibraryFileName("torch_cpu"))))
                return new LibTorchLoadException($"{LibTorchDirectoryVariable}={directory} holds no {LibraryFileName("torch_cpu")}: point it at a libtorch 2.10 lib folder (e.g. a PyTorch wheel's torch/lib)");
        }
        // TorchSharp loads the same way on first use; doing it here turns a failure into one clear message.
        NativeLibrary.TryLoad("torch_cpu", typeof(torch).Assembly, null, out _);
        try
        {
            NativeLibrary.Load("LibTorchSharp", typeof(torch).Assembly, null);
            return null;
        }
        catch (DllNotFoundException exception)
        {
            return new LibTorchLoadException(Explain(exception.Message), exception);
        }
    }

    private static string Explain(string loaderMessage)
    {
        // The loader lists every path it tried; the one that exists carries the real reason.
        var reason = loaderMessage.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => (Line: line, Colon: line.IndexOf(": ", StringComparison.Ordinal)))
            .FirstOrDefault(entry => entry.Colon > 0 && File.Exists(entry.Line[..entry.Colon])).Line;
        if (reason is null)
            return "TorchSharp's native library (LibTorchSharp) is not in the app's output: reference the TorchSharp package (SharpTune " +
                   "brings it) and a libtorch (TorchSharp-cpu, TorchSharp-cuda-linux or TorchSharp-cuda-windows), or set " +
                   $"{LibTorchDirectoryVariable}";
        if (reason.Contains("GLIBCXX_", StringComparison.Ordinal) || reason.Contains("CXXABI_", StringComparison.Ordinal))
            return $"TorchSharp's native library needs a newer libstdc++ than this system has ({reason}). SharpTune's build " +
                   "patches the copy in the build output (SharpTune.targets runs fix-libtorchsharp.sh, which needs patchelf, g++ and " +
                   "readelf: apt-get install patchelf g++ binutils); install them and rebuild, or run on a system with libstdc++ 13 or newer";
        return $"libtorch is missing or is not the 2.10 build TorchSharp 0.107 needs ({reason}). Add the package TorchSharp-cpu (CPU), " +
               "TorchSharp-cuda-linux or TorchSharp-cuda-windows (NVIDIA GPU) to the app, or set " +
               $"{LibTorchDirectoryVariable} to an existing libtorch 2.10 lib folder (e.g. a PyTorch wheel's torch/lib)";
    }

    /// <summary>The loader's reason, without the list of paths .NET also tried.</summary>
    private static string FirstReason(string loaderMessage) =>
        loaderMessage.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault() ?? loaderMessage;

    private static string LibraryFileName(string name) =>
        OperatingSystem.IsWindows() ? $"{name}.dll" : OperatingSystem.IsMacOS() ? $"lib{name}.dylib" : $"lib{name}.so";

    /// <summary>Which libtorch build is loaded (<c>CPU-only</c> or <c>CUDA x.y</c>) and, when CUDA is unavailable, why.</summary>
    public static LibTorchBuildInfo Describe()
    {
        EnsureLoaded();
        var cudaAvailable = torch.cuda.is_available();
        var directory = LoadedDirectory();
        var cudaLibrary = directory is null ? null : Path.Combine(directory, LibraryFileName("torch_cuda"));
        var isCudaBuild = cudaLibrary is not null && File.Exists(cudaLibrary) || cudaAvailable;
        if (!isCudaBuild)
            return new LibTorchBuildInfo("CPU-only", directory,
                "this libtorch is a CPU-only build; for an NVIDIA GPU build the app with TorchSharp-cuda-linux / TorchSharp-cuda-windows " +
                $"(in the SharpTune repo: -p:SharpTuneBackend=cuda) or set {LibTorchDirectoryVariable} to a CUDA libtorch");
        var version = CudaRuntimeVersion(directory!);
        var build = version is { } v ? $"CUDA {v / 1000}.{v % 1000 / 10}" : "CUDA (runtime version unknown)";
        string? reason = null;
        if (!cudaAvailable)
            reason = NativeLibrary.TryLoad(OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1", out _)
                ? "the NVIDIA driver sees no usable GPU (check nvidia-smi and CUDA_VISIBLE_DEVICES)"
                : "the NVIDIA driver is not installed (libcuda.so.1 / nvcuda.dll not found)";
        return new LibTorchBuildInfo(build, directory, reason);
    }

    /// <summary>The folder libtorch_cpu was loaded from (Linux: from the process's mappings; elsewhere the override or the app folder).</summary>
    private static string? LoadedDirectory()
    {
        if (OperatingSystem.IsLinux())
        {
            try
            {
                foreach (var line in File.ReadLines("/proc/self/maps"))
                {
                    var slash = line.IndexOf('/');
                    if (slash >= 0 && line.EndsWith("/libtorch_cpu.so", StringComparison.Ordinal))
                        return Path.GetDirectoryName(line[slash..]);
                }
            }
            catch (IOException)
            {
            }
        }
        if (Environment.GetEnvironmentVariable(LibTorchDirectoryVariable) is { Length: > 0 } directory)
            return directory;
        var rid = RuntimeInformation.RuntimeIdentifier;
        return new[] { AppContext.BaseDirectory, Path.Combine(AppContext.BaseDirectory, "runtimes", rid, "native") }
            .FirstOrDefault(d => File.Exists(Path.Combine(d, LibraryFileName("torch_cpu"))));
    }

    private delegate int CudaRuntimeGetVersion(out int version);

    /// <summary>The CUDA runtime version (e.g. 12080) of the libcudart next to libtorch (libtorch archives ship it as
    /// libcudart-hash.so.N) or on the loader's path (PyTorch wheels), or null.</summary>
    private static int? CudaRuntimeVersion(string directory)
    {
        var candidates = System.IO.Directory.EnumerateFiles(directory, OperatingSystem.IsWindows() ? "cudart64*.dll" : "libcudart*.so*")
            .Concat(OperatingSystem.IsWindows() ? [] : ["libcudart.so.12", "libcudart.so.13", "libcudart.so.11.0"]);
        foreach (var candidate in candidates)
        {
            if (!NativeLibrary.TryLoad(candidate, out var handle) || !NativeLibrary.TryGetExport(handle, "cudaRuntimeGetVersion", out var export))
                continue;
            var getVersion = Marshal.GetDelegateForFunctionPointer<CudaRuntimeGetVersion>(export);
            if (getVersion(out var version) == 0 && version > 0)
                return version;
        }
        return null;
    }
}
